import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { MeshError } from './errors.js';
import {
  ensureRequestId,
  grpcCodeName,
  grpcPercentEncode,
  formatGrpcTimeout,
  grpcTimeoutMs,
  httpStatusOfGrpc,
  HttpListener,
  sendProblem,
} from './http.js';
import { createMetrics } from './metrics.js';

const silent = pino({ level: 'silent' });

describe('HttpListener', () => {
  const listeners: HttpListener[] = [];
  afterEach(async () => {
    await Promise.all(listeners.splice(0).map((l) => l.stop()));
  });

  function listen(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    options: { http2: boolean; idleTimeoutMs?: number } = { http2: false },
  ) {
    const metrics = createMetrics();
    const listener = new HttpListener({
      name: 'test',
      host: '127.0.0.1',
      port: 0,
      handler,
      metrics,
      logger: silent,
      ...options,
    });
    listeners.push(listener);
    return { listener, metrics };
  }

  for (const withHttp2 of [false, true]) {
    it(`drain waits for in-flight requests, answers them with Connection: close and then refuses new connections${withHttp2 ? ' (http2 on, HTTP/1.1 client)' : ''}`, async () => {
      const release: (() => void)[] = [];
      const { listener } = listen(
        (_req, res) => {
          release.push(() => res.end('done'));
        },
        { http2: withHttp2 },
      );
      await listener.listen();
      const agent = new Agent({ keepAliveTimeout: 10_000 });
      const pending = request(listener.url, { dispatcher: agent });
      while (release.length === 0) await new Promise((r) => setImmediate(r));

      let drained = false;
      const draining = listener.drain().then(() => (drained = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(drained, false, 'drain must wait for the in-flight request');
      await assert.rejects(request(listener.url, { dispatcher: new Agent() }), /ECONNREFUSED/);

      release[0]();
      const res = await pending;
      assert.equal(await res.body.text(), 'done');
      await draining;
      assert.equal(listener.inFlightRequests, 0);
      await agent.close();
    });
  }

  it('with http2, serves HTTP/2 prior-knowledge and HTTP/1.1 connections on one port, told apart by their first bytes', async () => {
    const seen: string[] = [];
    const { listener } = listen(
      (req, res) => {
        seen.push(`${req.httpVersion} ${req.method} ${req.url} host=${req.headers.host}`);
        res.end('ok');
      },
      { http2: true },
    );
    await listener.listen();
    const { port } = listener.address;

    const session = http2.connect(listener.url);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const stream = session.request({ ':path': '/two', ':authority': 'orders' });
      stream.on('response', (headers) => resolve(headers[':status']));
      stream.on('error', reject);
      stream.resume();
    });
    assert.equal(status, 200);
    session.close();

    // A method that begins like the HTTP/2 preface ("PR…"), its first bytes sent alone: the
    // listener waits for more before it decides, and the request goes to HTTP/1.1.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write('PR');
        setTimeout(
          () => socket.write('OPFIND /dav HTTP/1.1\r\nHost: files\r\nConnection: close\r\n\r\n'),
          20,
        );
      });
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 200 /);
    assert.deepEqual(seen, ['2.0 GET /two host=orders', '1.1 PROPFIND /dav host=files']);
  });

  it('with http2, closes a session idle without streams, and not one waiting on a long stream', async () => {
    const release: (() => void)[] = [];
    const { listener } = listen(
      (req, res) => {
        if (req.url === '/long') release.push(() => res.end('late'));
        else res.end('now');
      },
      { http2: true, idleTimeoutMs: 150 },
    );
    await listener.listen();
    const session = http2.connect(listener.url);
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    let sessionClosed = false;
    void closed.then(() => (sessionClosed = true));
    const get = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': path });
        let body = '';
        stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
        stream.on('end', () => resolve(body));
        stream.on('error', reject);
      });
    assert.equal(await get('/quick'), 'now');
    const long = get('/long');
    // Three idle periods with the long stream open and silent: the session stays.
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(sessionClosed, false);
    release[0]();
    assert.equal(await long, 'late');
    // Nothing open any more: the session is closed after one idle period.
    await closed;
    assert.equal(listener.status().connections, 0);
  });

  it('with http2, drain sends GOAWAY and waits for the HTTP/2 streams in flight', async () => {
    const release: (() => void)[] = [];
    const { listener } = listen((_req, res) => release.push(() => res.end('done')), { http2: true });
    await listener.listen();
    const session = http2.connect(listener.url);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    let body = '';
    const answered = new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':path': '/slow' });
      stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    while (release.length === 0) await new Promise((r) => setImmediate(r));

    let drained = false;
    const draining = listener.drain().then(() => (drained = true));
    await goaway;
    assert.equal(drained, false, 'drain must wait for the stream in flight');
    assert.equal(listener.status().connections, 1);
    release[0]();
    await answered;
    assert.equal(body, 'done');
    await draining;
    assert.equal(listener.inFlightRequests, 0);
    session.destroy();
  });

  it('turns absolute-form request targets (HTTP_PROXY clients) into origin-form with their authority as Host', async () => {
    const seen: { url?: string; host?: string }[] = [];
    const { listener } = listen((req, res) => {
      seen.push({ url: req.url, host: req.headers.host });
      res.end();
    });
    await listener.listen();
    const { port } = new URL(listener.url);
    const send = (target: string) =>
      new Promise<void>((resolve, reject) => {
        // node:http sends `path` as the request target verbatim, as a client configured with a proxy does.
        const req = http.request({
          host: '127.0.0.1',
          port,
          path: target,
          headers: { host: 'sidecar:15001' },
        });
        req.on('response', (res) => res.resume().on('end', resolve));
        req.on('error', reject);
        req.end();
      });
    for (const target of [
      'http://orders/v1/items?limit=5',
      'HTTP://orders.shop.svc:8080',
      'http://user:secret@orders?q=1',
      'https://payments/charge#fragment',
      '/plain?x=1',
    ]) {
      await send(target);
    }
    assert.deepEqual(seen, [
      { url: '/v1/items?limit=5', host: 'orders' },
      { url: '/', host: 'orders.shop.svc:8080' },
      { url: '/?q=1', host: 'orders' },
      { url: '/charge', host: 'payments' },
      { url: '/plain?x=1', host: 'sidecar:15001' },
    ]);
  });

  it('counts requests by listener, method, route and status', async () => {
    const { listener, metrics } = listen((req, res) => {
      ensureRequestId(req, res);
      sendProblem(res, new MeshError('MESH_RATE_LIMITED', 'slow down', { headers: { 'retry-after': '2' } }));
    });
    await listener.listen();
    const res = await request(listener.url, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers['retry-after'], '2');
    assert.equal(res.headers['x-request-id'], 'abc-123');
    assert.equal(res.headers['content-type'], 'application/problem+json');
    const body = (await res.body.json()) as { status: number; detail: string };
    assert.equal(body.status, 429);
    assert.equal(body.detail, 'slow down');
    const counted = await metrics.httpServerRequests.get();
    assert.deepEqual(
      counted.values.map((v) => [v.labels, v.value]),
      [[{ listener: 'test', method: 'GET', route: 'other', status: '429' }, 1]],
    );
  });

  it('generates a request id when the caller sent none', async () => {
    const { listener } = listen((req, res) => {
      res.end(ensureRequestId(req, res));
    });
    await listener.listen();
    const res = await request(listener.url);
    const id = await res.body.text();
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(res.headers['x-request-id'], id);
  });
});

describe('grpcPercentEncode', () => {
  it('keeps printable ASCII and percent-encodes % and every other byte of the UTF-8 text', () => {
    assert.equal(
      grpcPercentEncode('MESH_TIMEOUT: app: 100% slow ü\n'),
      'MESH_TIMEOUT: app: 100%25 slow %C3%BC%0A',
    );
  });
});

describe('gRPC statuses', () => {
  it('names the status a caller got, bounded whatever an upstream sent', () => {
    assert.equal(grpcCodeName('0', true, 200), 'OK');
    assert.equal(grpcCodeName('14', true, 200), 'UNAVAILABLE');
    assert.equal(
      grpcCodeName('16', false, 0),
      'UNAUTHENTICATED',
      'a status sent counts even if the stream was cut after',
    );
    assert.equal(grpcCodeName('17', true, 200), 'UNKNOWN');
    assert.equal(grpcCodeName('', true, 200), 'UNKNOWN');
    assert.equal(grpcCodeName('x1', true, 200), 'UNKNOWN');
    assert.equal(grpcCodeName(undefined, false, 0), 'CANCELLED');
    assert.equal(grpcCodeName(undefined, true, 200), 'UNKNOWN', 'a 200 without a status');
    assert.equal(grpcCodeName(undefined, true, 503), 'UNAVAILABLE');
    assert.equal(grpcCodeName(undefined, true, 401), 'UNAUTHENTICATED');
  });

  it('reads a grpc-timeout deadline in whole milliseconds, and nothing from a malformed one', () => {
    assert.deepEqual(
      ['1H', '2M', '3S', '250m', '1500u', '1n', '99999999m'].map(grpcTimeoutMs),
      [3_600_000, 120_000, 3_000, 250, 2, 1, 99_999_999],
    );
    for (const bad of [undefined, '', '5', 'S', '123456789m', '1.5S', '10s', ' 1S', ['1S']]) {
      assert.equal(grpcTimeoutMs(bad), undefined, JSON.stringify(bad));
    }
    // Beyond what a timer can wait (it would fire at once): the longest wait instead.
    assert.equal(grpcTimeoutMs('99999999H'), 2 ** 31 - 1);
  });

  it('writes a grpc-timeout in milliseconds, rounded up, coarser when 8 digits do not hold it', () => {
    assert.deepEqual([0, -5, 0.2, 1500, 99_999_999, 100_000_000, 2 ** 31 - 1, 1e14].map(formatGrpcTimeout), [
      '1m',
      '1m',
      '1m',
      '1500m',
      '99999999m',
      '100000S',
      '2147484S',
      '27777778H',
    ]);
    for (const ms of [1, 250, 5_000, 99_999_999, 100_000_001]) {
      assert.ok(grpcTimeoutMs(formatGrpcTimeout(ms))! >= ms, `${ms} round trip`);
    }
  });

  it('maps gRPC statuses to HTTP as Envoy does, so 5xx-based policies see gRPC failures', () => {
    assert.deepEqual(
      [0, 1, 2, 4, 8, 12, 13, 14, 16, 99].map(httpStatusOfGrpc),
      [200, 499, 500, 504, 429, 501, 500, 503, 401, 500],
    );
  });
});

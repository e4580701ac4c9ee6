/**
 * HTTP/1.1 protocol handling through the sidecar process's ingress and egress. Upgrades
 * (WebSocket): the handshake passes with its headers, the two connections are joined both ways,
 * an upstream's refusal comes back as a response, and the ingress's policies (JWT here) apply to
 * an upgrade like to any request. `Expect: 100-continue`: the sidecar answers the 100 itself and
 * the body reaches the app. Absolute-form targets: an app using the egress as its HTTP proxy.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ProxyAgent, request } from 'undici';
import { freePort } from '../scripts/lib/ports.js';
import { startDemoBackend } from '../services/demo-backend/server.js';
import { startUpstreams } from './helpers/upstream.js';
import { metricValue, startTestSidecar } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptOf = (key: string) =>
  createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');

/**
 * A WebSocket-handshaking upstream that, once upgraded, echoes every byte upper-cased (so the
 * answer provably came from it). Paths under /refuse answer 403 instead of switching.
 */
async function startUpgradeUpstream(cleanup: CleanupStack) {
  const seen: IncomingHttpHeaders[] = [];
  const sockets = new Set<Duplex>();
  const server = http.createServer((_req, res) => res.writeHead(200).end('plain'));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.push(req.headers);
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => sockets.delete(socket));
    if (req.url?.startsWith('/refuse')) {
      socket.end(
        'HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nno, sir',
      );
      return;
    }
    const key = String(req.headers['sec-websocket-key']);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n' +
        `sec-websocket-accept: ${acceptOf(key)}\r\nx-upstream: echo\r\n\r\n`,
    );
    const echo = (chunk: Buffer) => socket.write(chunk.toString('latin1').toUpperCase());
    if (head.length > 0) echo(head);
    socket.on('data', echo);
    // As WebSocket servers do: the client's end of the stream ends it.
    socket.once('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.defer(
    () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(resolve);
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sockets };
}

interface Upgraded {
  status: number;
  headers: IncomingHttpHeaders;
  socket?: Duplex;
  body?: string;
}

/** Sends a WebSocket handshake; resolves with the 101 and its socket, or with the plain answer. */
function handshake(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Upgraded & { key: string }> {
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': key,
        'sec-websocket-version': '13',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, socket, key });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, key }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `text` and reads until as many bytes came back. */
function roundTrip(socket: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString('latin1');
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

describe('HTTP/1.1 protocol handling through the sidecar process', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  const start = (config: Record<string, unknown>) => startTestSidecar(cleanup, config);

  it('ingress: joins a WebSocket to the app both ways, relays a refused upgrade, and counts it', async () => {
    const app = await startUpgradeUpstream(cleanup);
    const sidecar = await start({ ingress: { host: '127.0.0.1', port: 0, target: app.url } });

    const ws = await handshake(sidecar.urls.ingress, '/chat?room=1', { 'x-request-id': 'upgrade-1' });
    assert.equal(ws.status, 101);
    assert.equal(ws.headers['sec-websocket-accept'], acceptOf(ws.key));
    assert.equal(ws.headers['x-upstream'], 'echo');
    assert.equal(String(ws.headers.upgrade).toLowerCase(), 'websocket');
    assert.equal(ws.headers['x-request-id'], 'upgrade-1');
    // What the app saw: the handshake with its key, the upgrade asked for, the forwarding headers.
    const appSaw = app.seen[0];
    assert.equal(appSaw['sec-websocket-key'], ws.key);
    assert.equal(String(appSaw.upgrade).toLowerCase(), 'websocket');
    assert.equal(appSaw['x-request-id'], 'upgrade-1');
    assert.equal(appSaw['x-forwarded-for'], '127.0.0.1');
    // Both ways, more than once, and a large message (several TCP segments) in one piece.
    assert.equal(await roundTrip(ws.socket!, 'hello'), 'HELLO');
    assert.equal(await roundTrip(ws.socket!, 'again'), 'AGAIN');
    const large = 'x'.repeat(256 * 1024);
    assert.equal(await roundTrip(ws.socket!, large), large.toUpperCase());

    // Closing the client's side closes the app's.
    assert.equal(app.sockets.size, 1);
    ws.socket!.destroy();
    await waitFor(() => app.sockets.size === 0 || undefined, { timeoutMs: 5_000 });
    // The tunnel counts as one request, status 101, once it has closed.
    await waitFor(
      async () =>
        (await metricValue(
          sidecar.urls.admin,
          'mesh_http_server_requests_total',
          'listener="ingress",method="GET",route="forward",status="101"',
        )) === 1 || undefined,
      { timeoutMs: 5_000 },
    );

    const refused = await handshake(sidecar.urls.ingress, '/refuse');
    assert.equal(refused.status, 403);
    assert.equal(refused.body, 'no, sir');
    assert.equal(refused.socket, undefined);

    // A body on an upgrade request could not be told apart from the new protocol's bytes: refused.
    const seenBefore = app.seen.length;
    const withBody = await handshake(sidecar.urls.ingress, '/chat', { 'content-length': '5' });
    assert.equal(withBody.status, 400);
    assert.equal((JSON.parse(withBody.body!) as { code: string }).code, 'MESH_BAD_REQUEST');
    assert.equal(app.seen.length, seenBefore, 'the app saw an upgrade with a body');

    // A plain request on the same listener is untouched by all this.
    const plain = await request(`${sidecar.urls.ingress}/plain`);
    assert.equal(plain.statusCode, 200);
    assert.equal(await plain.body.text(), 'plain');
  });

  it('ingress: an upgrade without a valid token is refused with 401 before the app sees it', async () => {
    const app = await startUpgradeUpstream(cleanup);
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const jwks = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
    );
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise((resolve) => jwks.close(resolve)));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const sidecar = await start({
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: app.url,
        jwt: { jwksUrl, issuer: 'https://issuer.test', audience: 'chat' },
      },
    });

    const anonymous = await handshake(sidecar.urls.ingress, '/chat');
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Bearer/);
    assert.equal((JSON.parse(anonymous.body!) as { code: string }).code, 'MESH_UNAUTHORIZED');
    assert.equal(app.seen.length, 0, 'the app saw a refused upgrade');

    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer('https://issuer.test')
      .setAudience('chat')
      .setSubject('alice')
      .setExpirationTime('5m')
      .sign(privateKey);
    const ws = await handshake(sidecar.urls.ingress, '/chat', { authorization: `Bearer ${token}` });
    assert.equal(ws.status, 101);
    assert.equal(await roundTrip(ws.socket!, 'signed in'), 'SIGNED IN');
    ws.socket!.destroy();
  });

  it('egress: joins a WebSocket to the service’s endpoint, retrying past a dead one, until the upstream closes', async () => {
    const upstream = await startUpgradeUpstream(cleanup);
    // A port nothing listens on: the first endpoint refuses the connection, the retry goes on.
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const sidecar = await start({
      ingress: { enabled: false },
      egress: {
        host: '127.0.0.1',
        port: 0,
        services: {
          chat: {
            endpoints: [deadUrl, upstream.url],
            loadBalancer: 'round_robin',
            retry: { attempts: 2, baseBackoffMs: 0 },
          },
        },
      },
    });

    for (let i = 0; i < 2; i += 1) {
      const ws = await handshake(sidecar.urls.egress, '/chat', { host: 'chat' });
      assert.equal(ws.status, 101, `handshake ${i + 1}`);
      assert.equal(ws.headers['sec-websocket-accept'], acceptOf(ws.key));
      assert.equal(await roundTrip(ws.socket!, `message ${i}`), `MESSAGE ${i}`);
      // The upstream closing its side closes the app's.
      const closed = new Promise((resolve) => ws.socket!.once('close', resolve));
      for (const socket of upstream.sockets) socket.end();
      await closed;
    }
    assert.equal(upstream.seen.length, 2);
    assert.equal(upstream.seen[0]['sec-websocket-key'] !== undefined, true);
    const unknown = await handshake(sidecar.urls.egress, '/chat', { host: 'nobody' });
    assert.equal(unknown.status, 404);
  });

  it('answers Expect: 100-continue itself and relays the body, on both listeners', async () => {
    const app = await startDemoBackend();
    cleanup.defer(() => app.close());
    const sidecar = await start({
      ingress: { host: '127.0.0.1', port: 0, target: app.url },
      egress: { host: '127.0.0.1', port: 0, services: { demo: { endpoints: [app.url] } } },
    });
    const body = JSON.stringify({ payload: 'y'.repeat(4096) });
    for (const [listener, host] of [
      [sidecar.urls.ingress, undefined],
      [sidecar.urls.egress, 'demo'],
    ] as const) {
      // What curl does for a large upload: send the head, wait for 100 Continue, then the body.
      const answer = await new Promise<{ status: number; continued: boolean; json: string }>(
        (resolve, reject) => {
          let continued = false;
          const req = http.request(`${listener}/echo`, {
            method: 'POST',
            headers: {
              expect: '100-continue',
              'content-type': 'application/json',
              'content-length': String(Buffer.byteLength(body)),
              ...(host === undefined ? {} : { host }),
            },
          });
          req.on('continue', () => {
            continued = true;
            req.end(body);
          });
          req.on('response', (res) => {
            let json = '';
            res.setEncoding('utf8').on('data', (chunk: string) => (json += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, continued, json }));
          });
          req.on('error', reject);
          req.flushHeaders();
        },
      );
      assert.equal(answer.status, 200, `${listener}: ${answer.json}`);
      assert.equal(answer.continued, true, 'no 100 Continue came');
      const echoed = JSON.parse(answer.json) as { body: unknown; headers: Record<string, string> };
      assert.deepEqual(echoed.body, JSON.parse(body));
      assert.equal(echoed.headers.expect, undefined, 'the app was asked to expect a 100 again');
    }
  });

  it('egress: serves an app that uses it as its HTTP proxy (absolute-form targets, HTTP_PROXY)', async () => {
    const [orders, catalog] = await startUpstreams(2, 'target');
    cleanup.defer(() => orders.stop());
    cleanup.defer(() => catalog.stop());
    const sidecar = await start({
      ingress: { enabled: false },
      egress: {
        host: '127.0.0.1',
        port: 0,
        services: { orders: { endpoints: [orders.url] }, catalog: { endpoints: [catalog.url] } },
        routes: [{ prefix: '/catalog', service: 'catalog' }],
      },
    });
    // What an HTTP client does with HTTP_PROXY set for a plain-http URL: no tunnel, absolute-form target.
    const proxy = new ProxyAgent({ uri: sidecar.urls.egress, proxyTunnel: false });
    cleanup.defer(() => proxy.close());
    const res = await request('http://orders/v1/items?limit=5', { dispatcher: proxy });
    assert.equal(res.statusCode, 200, await res.body.text());
    assert.ok(res.headers['x-request-id'], 'the answer came through the egress');
    // The upstream gets the origin-form target, as from any other caller.
    assert.equal(orders.requests[0]?.url, '/v1/items?limit=5');
    // The URL's authority is the Host the router sees: no service of that name, so the path routes apply.
    const byPrefix = await request('http://elsewhere.example/catalog/books', { dispatcher: proxy });
    assert.equal(byPrefix.statusCode, 200, await byPrefix.body.text());
    assert.equal(catalog.requests[0]?.url, '/catalog/books');
    const unknown = await request('http://nobody/echo', { dispatcher: proxy });
    assert.equal(unknown.statusCode, 404);
    assert.match(await unknown.body.text(), /nobody/);
  });
});

/**
 * Bad input on every listener of a real sidecar process (admin, ingress, egress, bridge): each kind
 * gets its documented status and error code, the process stays up (admin /healthz 200), its memory
 * stays bounded, nothing acknowledged before is lost, and slow-header clients are cut off.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { kafkaSuite, uniqueName } from '../helpers/kafka.js';
import { startSidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';
import { rawExchange, rssOf, slowHeaders } from './raw-http.js';

const petstore = fileURLToPath(new URL('../../examples/openapi/petstore.yaml', import.meta.url));
const TEXT = 'application/vnd.kafka.text.v2+json';
const BINARY = 'application/vnd.kafka.binary.v2+json';

interface Outcome {
  status: number;
  /** `code` of a problem+json body, `error_code` of a bridge body, undefined otherwise. */
  code: string | number | undefined;
}

/** An app that answers every request with 200 and remembers the paths it saw. */
async function startRecordingApp(): Promise<{ url: string; paths: string[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    paths,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Outcome> {
  const res = await request(url, {
    method: (init.method ?? (init.body === undefined ? 'GET' : 'POST')) as 'GET',
    headers: init.headers,
    body: init.body,
  });
  const text = await res.body.text();
  let code: string | number | undefined;
  try {
    const body = JSON.parse(text) as { code?: string; error_code?: number };
    code = body.code ?? body.error_code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, code };
}

function records(count: number, value = (i: number) => `v${i}`) {
  return JSON.stringify({
    records: Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: value(i) })),
  });
}

describe('bad input on every listener (sidecar process, real broker)', function () {
  this.timeout(120_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it('answers each kind of bad input with its documented status and code, stays up, bounded, and loses nothing', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('bad-input'), 2);
    const app = await startRecordingApp();
    cleanup.defer(() => app.close());
    const sidecar = await startSidecarProcess(
      {
        admin: { host: '127.0.0.1', port: 0 },
        ingress: {
          host: '127.0.0.1',
          port: 0,
          target: app.url,
          openapi: petstore,
          openapiStrict: true,
          maxBodyBytes: 64 * 1024,
          timeoutMs: 10_000,
        },
        egress: { port: 0, services: { orders: { endpoints: [app.url] } } },
        bridge: { enabled: true, port: 0, maxBodyBytes: 256 * 1024, maxRecordsPerRequest: 500 },
        kafka: { bootstrap: suite.kafka.brokers },
        shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
        log: { level: 'info' },
      },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => sidecar.cleanup());
    const { admin, ingress, egress, bridge } = sidecar.urls;
    assert.ok(admin && ingress && egress && bridge, JSON.stringify(sidecar.urls));

    // "started" is not "ready": the bridge answers 503 until its producer is connected.
    await waitFor(
      async () => {
        const res = await request(`${admin}/readyz`);
        await res.body.dump();
        return res.statusCode === 200;
      },
      { timeoutMs: 30_000, what: 'the sidecar to be ready' },
    );

    // Accepted before the bad input: 20 records, all acknowledged.
    const accepted = await call(`${bridge}/topics/${topic}`, {
      headers: { 'content-type': TEXT },
      body: records(20),
    });
    assert.equal(accepted.status, 200);
    let acknowledged = 20;

    // Slow-header clients on every listener, running while the rest goes on.
    const slow = Object.entries({ admin, ingress, egress, bridge }).map(async ([name, url]) => ({
      name,
      answer: await slowHeaders(url),
    }));

    const rssBefore = await rssOf(sidecar.proc.pid!);
    const invalidUtf8 = Buffer.concat([
      Buffer.from('{"records":[{"value":"'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}]}'),
    ]);
    const bigHeader = { 'x-big': 'h'.repeat(20 * 1024) };
    const smuggle = (path: string, host = 'x') =>
      `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 4\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const doubleLength = (path: string, host = 'x') =>
      `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}` +
      `GET /smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

    type Case = [
      listener: string,
      name: string,
      run: () => Promise<Outcome>,
      status: number,
      code?: string | number,
    ];
    const raw = async (url: string, payload: string): Promise<Outcome> => {
      const answer = await rawExchange(url, payload);
      let code: string | number | undefined;
      try {
        const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4)) as {
          code?: string;
          error_code?: number;
        };
        code = body.code ?? body.error_code;
      } catch {
        code = undefined; // not a body of ours (Node's own 400/431), or chunked
      }
      return { status: answer.status, code };
    };
    const cases: Case[] = [
      // bridge
      [
        'bridge',
        'malformed JSON',
        () => call(`${bridge}/topics/${topic}`, { headers: { 'content-type': TEXT }, body: '{"records":[' }),
        400,
        40000,
      ],
      [
        'bridge',
        'wrong content type',
        () =>
          call(`${bridge}/topics/${topic}`, { headers: { 'content-type': 'text/plain' }, body: records(1) }),
        415,
        41501,
      ],
      [
        'bridge',
        'oversize body',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': TEXT },
            body: records(1, () => 'x'.repeat(300 * 1024)),
          }),
        413,
        41301,
      ],
      [
        'bridge',
        'oversize headers',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': TEXT, ...bigHeader },
            body: records(1),
          }),
        431,
      ],
      [
        'bridge',
        'invalid UTF-8',
        () => call(`${bridge}/topics/${topic}`, { headers: { 'content-type': TEXT }, body: invalidUtf8 }),
        400,
        40000,
      ],
      [
        'bridge',
        'too many records',
        () => call(`${bridge}/topics/${topic}`, { headers: { 'content-type': TEXT }, body: records(501) }),
        422,
        42201,
      ],
      [
        'bridge',
        'invalid base64 value',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': BINARY },
            body: JSON.stringify({ records: [{ value: 'not base64!' }] }),
          }),
        422,
        42201,
      ],
      [
        'bridge',
        'empty header name',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': TEXT },
            body: JSON.stringify({ records: [{ value: 'v', headers: [{ key: '', value: 'YQ==' }] }] }),
          }),
        422,
        42201,
      ],
      [
        'bridge',
        'header value not base64',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': TEXT },
            body: JSON.stringify({ records: [{ value: 'v', headers: [{ key: 'h', value: '%%%' }] }] }),
          }),
        422,
        42201,
      ],
      [
        'bridge',
        'header value not a string',
        () =>
          call(`${bridge}/topics/${topic}`, {
            headers: { 'content-type': TEXT },
            body: JSON.stringify({ records: [{ value: 'v', headers: [{ key: 'h', value: 7 }] }] }),
          }),
        422,
        42201,
      ],
      [
        'bridge',
        'path traversal in topic',
        () => call(`${bridge}/topics/..%2F..%2Fetc%2Fpasswd`),
        400,
        40000,
      ],
      [
        'bridge',
        'dot-dot topic (sent as is: URL clients fold %2e%2e)',
        () => raw(bridge, 'GET /topics/%2e%2e/partitions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        400,
        40000,
      ],
      ['bridge', 'broken percent-encoding', () => call(`${bridge}/topics/%E0%A4%A`), 400, 40000],
      [
        'bridge',
        'traversal outside the API',
        () => raw(bridge, 'GET /topics/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        404,
      ],
      [
        'bridge',
        'unknown consumer instance (poll)',
        () => call(`${bridge}/consumers/g1/instances/nope/records`, { headers: { accept: BINARY } }),
        404,
        40403,
      ],
      [
        'bridge',
        'unknown consumer instance (delete)',
        () => call(`${bridge}/consumers/g1/instances/nope`, { method: 'DELETE' }),
        404,
        40403,
      ],
      ['bridge', 'smuggling CL+TE', () => raw(bridge, smuggle(`/topics/${topic}`)), 400],
      ['bridge', 'smuggling CL+CL', () => raw(bridge, doubleLength(`/topics/${topic}`)), 400],
      // ingress (OpenAPI strict, 64 KiB bodies)
      [
        'ingress',
        'malformed JSON',
        () =>
          call(`${ingress}/echo/v1/pets`, {
            headers: { 'content-type': 'application/json', 'x-tenant': 'acme' },
            body: '{"name":',
          }),
        400,
        'MESH_BAD_REQUEST',
      ],
      [
        'ingress',
        'wrong content type',
        () => call(`${ingress}/echo/v1/pets`, { headers: { 'content-type': 'text/csv' }, body: 'a,b' }),
        415,
        'MESH_UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        'ingress',
        'oversize body',
        () =>
          call(`${ingress}/echo/v1/pets`, {
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'x'.repeat(100 * 1024) }),
          }),
        413,
        'MESH_PAYLOAD_TOO_LARGE',
      ],
      ['ingress', 'oversize headers', () => call(`${ingress}/echo/v1/pets`, { headers: bigHeader }), 431],
      [
        'ingress',
        'invalid UTF-8',
        () =>
          call(`${ingress}/echo/v1/pets`, {
            headers: { 'content-type': 'application/json', 'x-tenant': 'acme' },
            body: Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
          }),
        400,
        'MESH_BAD_REQUEST',
      ],
      [
        'ingress',
        'path traversal',
        () =>
          raw(
            ingress,
            'GET /echo/v1/pets/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
          ),
        404,
      ],
      ['ingress', 'encoded slash', () => call(`${ingress}/echo/v1/pets%2F1`), 404, 'MESH_NOT_FOUND'],
      ['ingress', 'smuggling CL+TE', () => raw(ingress, smuggle('/echo/v1/pets')), 400],
      ['ingress', 'smuggling CL+CL', () => raw(ingress, doubleLength('/echo/v1/pets')), 400],
      // egress
      [
        'egress',
        'unknown service',
        () => call(`${egress}/x`, { headers: { host: 'nobody' } }),
        404,
        'MESH_NOT_FOUND',
      ],
      [
        'egress',
        'oversize headers',
        () => call(`${egress}/x`, { headers: { host: 'orders', ...bigHeader } }),
        431,
      ],
      ['egress', 'smuggling CL+TE', () => raw(egress, smuggle('/x', 'orders')), 400],
      ['egress', 'smuggling CL+CL', () => raw(egress, doubleLength('/x', 'orders')), 400],
      // admin
      [
        'admin',
        'quit through path traversal',
        () =>
          raw(
            admin,
            'POST /config/../quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
          ),
        404,
      ],
      [
        'admin',
        'unknown endpoint',
        () => call(`${admin}/healthz/..%2Fquitquitquit`, { method: 'POST' }),
        404,
        'MESH_NOT_FOUND',
      ],
      ['admin', 'oversize headers', () => call(`${admin}/healthz`, { headers: bigHeader }), 431],
      ['admin', 'smuggling CL+TE', () => raw(admin, smuggle('/quitquitquit')), 400],
    ];

    const failures: string[] = [];
    for (const [listener, name, run, status, code] of cases) {
      const outcome = await run();
      const ok = outcome.status === status && (code === undefined || outcome.code === code);
      console.log(
        `      ${ok ? 'ok  ' : 'FAIL'} ${listener.padEnd(7)} ${name.padEnd(34)} → ${outcome.status} ${outcome.code ?? ''}`,
      );
      if (!ok)
        failures.push(
          `${listener} ${name}: got ${outcome.status} ${outcome.code ?? ''}, want ${status} ${code ?? ''}`,
        );
    }

    // A header named __proto__ is an ordinary Kafka header, not a way into the record's prototype.
    const proto = await call(`${bridge}/topics/${topic}`, {
      headers: { 'content-type': TEXT },
      body: JSON.stringify({
        records: [
          {
            key: 'proto',
            value: 'p',
            headers: [
              { key: '__proto__', value: 'cHJvdG8=' },
              { key: 'constructor', value: 'cHJvdG8=' },
            ],
          },
        ],
      }),
    });
    assert.equal(proto.status, 200);
    acknowledged += 1;

    const slowAnswers = await Promise.all(slow);
    for (const { name, answer } of slowAnswers) {
      console.log(
        `      slow headers on ${name}: closed by the server ${answer.closedByServer}, status ${answer.status}`,
      );
      if (!answer.closedByServer || answer.status !== 408)
        failures.push(`slow headers on ${name}: ${JSON.stringify(answer)}`);
    }

    // Still up, still serving, and every acknowledged record is in the topic exactly once.
    const health = await request(`${admin}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    const later = await call(`${bridge}/topics/${topic}`, {
      headers: { 'content-type': TEXT },
      body: records(5),
    });
    assert.equal(later.status, 200);
    acknowledged += 5;
    const read = await suite.kafka.readTopic(topic, acknowledged);
    const count = await suite.kafka.recordCount(topic);
    const protoRecord = read.find((r) => r.key?.toString() === 'proto');
    const rssAfter = await rssOf(sidecar.proc.pid!);
    console.log(
      `      accounting: acknowledged ${acknowledged}, in the topic ${count}, lost ${acknowledged - Math.min(count, acknowledged)}; ` +
        `RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssAfter / 2 ** 20).toFixed(0)} MiB; ` +
        `app saw ${app.paths.filter((p) => p.includes('smuggled')).length} smuggled requests`,
    );
    assert.deepEqual(failures, []);
    assert.equal(count, acknowledged, 'every acknowledged record, once');
    // (kafkajs' own decoder folds these keys into arrays with Object's members: look for the value.)
    for (const name of ['__proto__', 'constructor']) {
      const own: unknown = Object.getOwnPropertyDescriptor(protoRecord?.headers ?? {}, name)?.value;
      const values = Array.isArray(own) ? (own as unknown[]) : [own];
      assert.ok(
        values.some((v) => Buffer.isBuffer(v) && v.toString() === 'proto'),
        `the ${name} header is kept`,
      );
    }
    assert.ok(!app.paths.some((p) => p.includes('smuggled')), 'no smuggled request reached the app');
    assert.ok(rssAfter < rssBefore + 200 * 2 ** 20, `RSS grew by ${(rssAfter - rssBefore) / 2 ** 20} MiB`);
    assert.equal(sidecar.proc.exitCode, null, 'the sidecar is still running');
  });
});

/**
 * HTTP/2 and gRPC through the sidecar process. A real gRPC server (@grpc/grpc-js) is the app behind
 * the ingress (`targetProtocol: http2`) and a service behind the egress (`protocol: http2`); a real
 * gRPC client calls it through each listener over h2c, on the same port that serves HTTP/1.1. The
 * status in the response trailers, metadata both ways, server streaming and the sidecar's own
 * refusals (as gRPC statuses) are checked; and an HTTP/2 client reaches an HTTP/1.1 app, its requests
 * validated against an OpenAPI document like HTTP/1.1 ones.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { createCa, issueCertificate } from '../scripts/lib/pki.js';
import { startDemoBackend } from '../services/demo-backend/server.js';
import { freePort } from '../scripts/lib/ports.js';
import { metricValue, startTestSidecar } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

const bytes = (b: Buffer) => b;
const method = (name: string, responseStream: boolean) => ({
  path: `/mesh.test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
});
/** Messages are raw bytes: no .proto needed to prove what the proxy does with frames and trailers. */
const ECHO_SERVICE = {
  echo: method('Echo', false),
  fail: method('Fail', false),
  hang: method('Hang', false),
  count: method('Count', true),
} as const;

interface Seen {
  metadata: grpc.Metadata;
  /** Hang only: set when the call is cancelled (its caller went away). */
  cancelled?: boolean;
  /** Hang and Echo: the deadline the call arrived with (`grpc-timeout`), Infinity without one. */
  deadline?: number;
}

/** The standard health service (grpc.health.v1), in raw bytes like the rest. */
const HEALTH_SERVICE = {
  check: { ...method('Check', false), path: '/grpc.health.v1.Health/Check' },
} as const;

interface GrpcAppOptions {
  /** Serve over TLS with these credentials. */
  readonly credentials?: grpc.ServerCredentials;
  /** Echo answers this status instead (a Trailers-Only answer, as gRPC servers send a failure before any message). */
  readonly echoFails?: grpc.status;
  /** Echo answers (or fails) this long after the call arrived. */
  readonly echoDelayMs?: number;
  /** Serve grpc.health.v1 with this serving status (1 SERVING, 2 NOT_SERVING) for any service name. */
  readonly health?: { status: number };
}

/**
 * A gRPC server on a free port: Echo (answers "echo:<request>"), Fail (NOT_FOUND), Hang (never
 * answers), Count (streams n messages); see GrpcAppOptions.
 */
async function startGrpcApp(
  cleanup: CleanupStack,
  {
    credentials = grpc.ServerCredentials.createInsecure(),
    echoFails,
    echoDelayMs = 0,
    health,
  }: GrpcAppOptions = {},
): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = new grpc.Server();
  if (health !== undefined) {
    server.addService(HEALTH_SERVICE, {
      check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, Buffer.from([0x08, health.status])),
    });
  }
  server.addService(ECHO_SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      seen.push({ metadata: call.metadata, deadline: Number(call.getDeadline()) });
      const answer = () => {
        if (echoFails !== undefined) {
          callback({ code: echoFails, details: 'echo is failing' });
          return;
        }
        const header = new grpc.Metadata();
        header.set('x-app', 'grpc-echo');
        call.sendMetadata(header);
        const trailer = new grpc.Metadata();
        trailer.set('x-app-trailer', 'done');
        callback(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
      };
      if (echoDelayMs > 0) setTimeout(answer, echoDelayMs);
      else answer();
    },
    fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      seen.push({ metadata: call.metadata });
      callback({ code: grpc.status.NOT_FOUND, details: `no order ${call.request.toString()}` });
    },
    hang: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      const deadline = call.getDeadline();
      const entry: Seen = { metadata: call.metadata, cancelled: false, deadline: Number(deadline) };
      seen.push(entry);
      call.on('cancelled', () => (entry.cancelled = true));
    },
    // "<n>" streams n messages at once; "<n>/<ms>" one every <ms> milliseconds.
    count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const [n, everyMs] = call.request.toString().split('/').map(Number);
      if (everyMs === undefined) {
        for (let i = 1; i <= n; i += 1) call.write(Buffer.from(String(i)));
        call.end();
        return;
      }
      let i = 0;
      const timer = setInterval(() => {
        i += 1;
        call.write(Buffer.from(String(i)));
        if (i < n) return;
        clearInterval(timer);
        call.end();
      }, everyMs);
      call.on('cancelled', () => clearInterval(timer));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  cleanup.defer(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return { url: `${credentials._isSecure() ? 'https' : 'http'}://127.0.0.1:${port}`, seen };
}

interface UnaryResult {
  error: grpc.ServiceError | null;
  value?: Buffer;
  headers?: grpc.Metadata;
  trailers?: grpc.Metadata;
}

/** A gRPC client to `url` (`http://host:port`), naming `authority` as the `:authority` it calls. */
function grpcClient(
  cleanup: CleanupStack,
  url: string,
  authority?: string,
  credentials = grpc.credentials.createInsecure(),
) {
  const { host } = new URL(url);
  const client = new grpc.Client(host, credentials, {
    ...(authority ? { 'grpc.default_authority': authority, 'grpc.ssl_target_name_override': authority } : {}),
  });
  cleanup.defer(() => client.close());
  const unary = (
    name: 'echo' | 'fail' | 'hang',
    body: string,
    metadata = new grpc.Metadata(),
    deadlineMs = 10_000,
  ) =>
    new Promise<UnaryResult>((resolve) => {
      const result: UnaryResult = { error: null };
      const call = client.makeUnaryRequest(
        ECHO_SERVICE[name].path,
        bytes,
        bytes,
        Buffer.from(body),
        metadata,
        { deadline: Date.now() + deadlineMs },
        (error, value) => {
          result.error = error;
          result.value = value;
          // 'status' (with the trailers) comes right after the callback.
          setImmediate(() => resolve(result));
        },
      );
      call.on('metadata', (headers: grpc.Metadata) => (result.headers = headers));
      call.on('status', (status: grpc.StatusObject) => (result.trailers = status.metadata));
    });
  const count = (n: number, options: { everyMs?: number; deadlineMs?: number } = {}) =>
    new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = client.makeServerStreamRequest(
        ECHO_SERVICE.count.path,
        bytes,
        bytes,
        Buffer.from(options.everyMs === undefined ? String(n) : `${n}/${options.everyMs}`),
        new grpc.Metadata(),
        options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs },
      );
      call.on('data', (message: Buffer) => got.push(message.toString()));
      call.on('error', reject);
      call.on('end', () => resolve(got));
    });
  return { unary, count, client };
}

/** `mesh_grpc_server_handled_total` of a listener and route (`listener="…",route="…"`) and one gRPC status. */
function grpcHandled(adminUrl: string, listenerAndRoute: string, code: string): Promise<number> {
  return metricValue(adminUrl, 'mesh_grpc_server_handled_total', `${listenerAndRoute},grpc_code="${code}"`);
}

/** A sidecar process running only the egress listener (h2c and HTTP/1.1 on one port), with these services. */
function startEgressSidecar(cleanup: CleanupStack, services: Record<string, unknown>) {
  return startTestSidecar(cleanup, {
    ingress: { enabled: false },
    egress: { host: '127.0.0.1', port: 0, services },
  });
}

/** One HTTP/2 request on a new session to `url`; the session is closed by `cleanup`. */
async function h2Request(
  cleanup: CleanupStack,
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
  const session = http2.connect(url);
  cleanup.defer(() => session.close());
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    let text = '';
    let answered: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (answered = h));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve({ headers: answered, body: text }));
    stream.on('error', reject);
    stream.end(body);
  });
}

/**
 * An HTTP/2 server that takes every stream and never answers it: unlike a grpc-js app it does not
 * enforce a call's `grpc-timeout` itself, so an answer at the deadline can only be the sidecar's.
 */
async function startSilentH2App(cleanup: CleanupStack): Promise<string> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => sessions.add(session));
  server.on('stream', (stream) => stream.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.defer(() => {
    for (const session of sessions) session.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A unary gRPC request (one 1-byte message) from a raw HTTP/2 caller that enforces no deadline itself. */
function rawGrpcCall(cleanup: CleanupStack, url: string, headers: http2.OutgoingHttpHeaders) {
  return h2Request(
    cleanup,
    url,
    {
      ':method': 'POST',
      ':path': ECHO_SERVICE.hang.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    },
    '\u0000\u0000\u0000\u0000\u0001x',
  );
}

/**
 * Starts a Hang call without a deadline, cancels it once the app has it (the client resets the
 * stream) and answers the app's record of the call, whose `cancelled` only the sidecar can set.
 */
async function cancelHangingCall(client: grpc.Client, seen: Seen[]): Promise<Seen> {
  const before = seen.length;
  const error = await new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.makeUnaryRequest(ECHO_SERVICE.hang.path, bytes, bytes, Buffer.from('y'), resolve);
    void waitFor(() => seen.length > before).then(() => call.cancel());
  });
  assert.equal(error?.code, grpc.status.CANCELLED);
  return seen.at(-1)!;
}

describe('HTTP/2 and gRPC through the sidecar process', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('ingress: unary and server-streaming gRPC calls reach a gRPC app, with metadata and status both ways', async () => {
    const app = await startGrpcApp(cleanup);
    const sidecar = await startTestSidecar(cleanup, {
      ingress: { host: '127.0.0.1', port: 0, target: app.url, targetProtocol: 'http2' },
    });
    const client = grpcClient(cleanup, sidecar.urls.ingress);

    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', 'grpc-call-1');
    metadata.set('x-tenant', 'acme');
    const ok = await client.unary('echo', 'hello', metadata);
    assert.equal(ok.error, null);
    assert.equal(ok.value?.toString(), 'echo:hello');
    assert.deepEqual(ok.headers?.get('x-app'), ['grpc-echo']);
    assert.deepEqual(ok.headers?.get('x-request-id'), ['grpc-call-1']);
    // The app's trailing metadata arrived: trailers are relayed, not dropped.
    assert.deepEqual(ok.trailers?.get('x-app-trailer'), ['done']);
    const received = app.seen.at(-1)!.metadata;
    assert.deepEqual(received.get('x-tenant'), ['acme']);
    assert.deepEqual(received.get('x-request-id'), ['grpc-call-1']);
    assert.deepEqual(received.get('x-forwarded-proto'), ['http']);
    assert.equal(received.get('x-forwarded-for').length, 1);

    // An error status travels in the trailers: without them the client would see a bare 200.
    const failed = await client.unary('fail', '42');
    assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
    assert.equal(failed.error?.details, 'no order 42');

    assert.deepEqual(
      await client.count(200),
      Array.from({ length: 200 }, (_, i) => String(i + 1)),
    );

    // The caller's deadline passes: the app got it (`grpc-timeout`) and the caller DEADLINE_EXCEEDED.
    const late = await client.unary('hang', 'x', new grpc.Metadata(), 300);
    assert.equal(late.error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Number.isFinite(app.seen.at(-1)!.deadline), 'the app got the deadline');
    // A caller that cancels a call without a deadline: the cancellation reaches the app through
    // the sidecar (no call left running upstream), and the call counts as aborted (status 0).
    const hung = await cancelHangingCall(client.client, app.seen);
    assert.equal(hung.deadline, Infinity);
    await waitFor(() => hung.cancelled, { what: 'the app saw the call cancelled' });
    const byStatus = (status: string) =>
      metricValue(
        sidecar.urls.admin,
        'mesh_http_server_requests_total',
        `listener="ingress",method="POST",route="forward",status="${status}"`,
      );
    // The call past its deadline ends one of two ways, whichever comes first: the caller gives up
    // (aborted, status 0) or the sidecar, enforcing the same deadline, answers DEADLINE_EXCEEDED.
    await waitFor(async () => (await byStatus('0')) + (await byStatus('200')) === 5);
    assert.ok((await byStatus('0')) >= 1);

    // Many calls at once share the sidecar's connections; each gets its own answer.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.unary('echo', `m${i}`)));
    assert.deepEqual(
      many.map((r) => r.value?.toString()),
      Array.from({ length: 50 }, (_, i) => `echo:m${i}`),
    );

    // The same port still serves HTTP/1.1.
    const plain = await request(`${sidecar.urls.admin}/readyz`);
    assert.equal(plain.statusCode, 200);
    await plain.body.dump();
    await waitFor(async () => (await byStatus('0')) + (await byStatus('200')) === 5 + 50);
    // The same calls by the gRPC status their caller got: the failed one is not an OK; the one
    // cancelled is CANCELLED, the one past its deadline CANCELLED or DEADLINE_EXCEEDED (see above).
    const byCode = (code: string) =>
      grpcHandled(sidecar.urls.admin, 'listener="ingress",route="forward"', code);
    assert.deepEqual(
      [
        await byCode('OK'),
        await byCode('NOT_FOUND'),
        (await byCode('CANCELLED')) + (await byCode('DEADLINE_EXCEEDED')),
      ],
      [1 + 1 + 50, 1, 2],
    );
    assert.ok((await byCode('CANCELLED')) >= 1);
  });

  it('ingress: refusals of gRPC calls are gRPC statuses with the stable code, and keep their headers', async () => {
    const app = await startGrpcApp(cleanup);
    const sidecar = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: app.url,
        targetProtocol: 'http2',
        rateLimits: [{ requestsPerSecond: 0.01, burst: 1 }],
        // A gRPC call's body is a stream with no total to bound: the limit does not apply to it.
        maxBodyBytes: 64,
      },
    });
    const client = grpcClient(cleanup, sidecar.urls.ingress);
    const big = await client.unary('echo', 'x'.repeat(4096));
    assert.equal(big.error, null);
    assert.equal(big.value?.length, 'echo:'.length + 4096);
    const limited = await client.unary('echo', 'second');
    assert.equal(limited.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(limited.error?.details ?? '', /^MESH_RATE_LIMITED: /);
    assert.deepEqual(limited.error?.metadata.get('x-mesh-error-code'), ['MESH_RATE_LIMITED']);
    assert.ok(Number(limited.error?.metadata.get('retry-after')[0]) > 0, 'Retry-After stays on the answer');
    assert.equal(app.seen.length, 1, 'the refused call never reached the app');
    await waitFor(
      async () =>
        (await grpcHandled(
          sidecar.urls.admin,
          'listener="ingress",route="forward"',
          'RESOURCE_EXHAUSTED',
        )) === 1,
      { what: "the sidecar's refusal counted by its gRPC status" },
    );
  });

  it('egress: a gRPC call reaches the service named by :authority; refusals come back as gRPC statuses', async () => {
    const app = await startGrpcApp(cleanup);
    // A port nothing listens on.
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const sidecar = await startEgressSidecar(cleanup, {
      orders: { endpoints: [app.url], protocol: 'http2' },
      gone: {
        endpoints: [deadUrl],
        protocol: 'http2',
        retry: { attempts: 2, baseBackoffMs: 1, maxBackoffMs: 2 },
      },
    });

    const orders = grpcClient(cleanup, sidecar.urls.egress, 'orders');
    const ok = await orders.unary('echo', 'via egress');
    assert.equal(ok.error, null);
    assert.equal(ok.value?.toString(), 'echo:via egress');
    assert.deepEqual(ok.trailers?.get('x-app-trailer'), ['done']);
    const failed = await orders.unary('fail', '7');
    assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
    assert.equal(failed.error?.details, 'no order 7');
    assert.deepEqual(
      await orders.count(20),
      Array.from({ length: 20 }, (_, i) => String(i + 1)),
    );
    const hung = await cancelHangingCall(orders.client, app.seen);
    await waitFor(() => hung.cancelled, { what: 'the app saw the call cancelled' });

    // The sidecar's own answers: an unknown service, and one whose endpoint refuses connections.
    const unknown = await grpcClient(cleanup, sidecar.urls.egress, 'nobody').unary('echo', 'x');
    assert.equal(unknown.error?.code, grpc.status.UNIMPLEMENTED);
    assert.match(unknown.error?.details ?? '', /^MESH_NOT_FOUND: .*nobody/);
    const down = await grpcClient(cleanup, sidecar.urls.egress, 'gone').unary('echo', 'x');
    assert.equal(down.error?.code, grpc.status.UNAVAILABLE);
    assert.match(down.error?.details ?? '', /^MESH_/);
    assert.equal(
      await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="gone"'),
      1,
      'the connect failure was retried once, as for HTTP/1.1',
    );
  });

  it('over TLS: gRPC with client certificates into the ingress (h2 by ALPN), and out of the egress to a TLS gRPC service', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpc-tls-'));
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
    await createCa(dir, 'ca', '/CN=grpc-test-ca');
    for (const [name, usage] of [
      ['orders', 'serverAuth'],
      ['caller', 'clientAuth'],
    ]) {
      await issueCertificate(dir, {
        name,
        subject: `/CN=${name}.internal`,
        ca: 'ca',
        extensions: `subjectAltName=DNS:${name}.internal\nextendedKeyUsage=${usage}\n`,
      });
    }
    const file = (name: string) => join(dir, name);
    const pem = (name: string) => readFileSync(file(name));
    const plainApp = await startGrpcApp(cleanup);
    // A TLS gRPC service that insists on a client certificate.
    const tlsApp = await startGrpcApp(cleanup, {
      credentials: grpc.ServerCredentials.createSsl(
        pem('ca.crt'),
        [{ cert_chain: pem('orders.crt'), private_key: pem('orders.key') }],
        true,
      ),
    });
    const sidecar = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: plainApp.url,
        targetProtocol: 'http2',
        tls: { cert: file('orders.crt'), key: file('orders.key'), clientCa: file('ca.crt') },
      },
      egress: {
        host: '127.0.0.1',
        port: 0,
        services: {
          orders: {
            endpoints: [tlsApp.url],
            protocol: 'http2',
            tls: {
              ca: file('ca.crt'),
              cert: file('caller.crt'),
              key: file('caller.key'),
              serverName: 'orders.internal',
            },
          },
        },
      },
    });

    const withCertificate = grpc.credentials.createSsl(pem('ca.crt'), pem('caller.key'), pem('caller.crt'));
    const inbound = await grpcClient(cleanup, sidecar.urls.ingress, 'orders.internal', withCertificate).unary(
      'echo',
      'tls',
    );
    assert.equal(inbound.error, null);
    assert.equal(inbound.value?.toString(), 'echo:tls');
    assert.deepEqual(plainApp.seen.at(-1)!.metadata.get('x-forwarded-proto'), ['https']);
    const failed = await grpcClient(cleanup, sidecar.urls.ingress, 'orders.internal', withCertificate).unary(
      'fail',
      '9',
    );
    assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
    // No client certificate: the TLS handshake fails, no call reaches the app.
    const seenBefore = plainApp.seen.length;
    const anonymous = await grpcClient(
      cleanup,
      sidecar.urls.ingress,
      'orders.internal',
      grpc.credentials.createSsl(pem('ca.crt')),
    ).unary('echo', 'x');
    assert.equal(anonymous.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(plainApp.seen.length, seenBefore);

    const outbound = await grpcClient(cleanup, sidecar.urls.egress, 'orders').unary('echo', 'to tls');
    assert.equal(outbound.error, null);
    assert.equal(outbound.value?.toString(), 'echo:to tls');
    assert.deepEqual(outbound.trailers?.get('x-app-trailer'), ['done']);
  });

  it('HTTP/2 requests are validated against the OpenAPI document like HTTP/1.1 ones', async () => {
    const app = await startDemoBackend();
    cleanup.defer(() => app.close());
    const sidecar = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: app.url,
        openapi: fileURLToPath(new URL('../examples/openapi/petstore.yaml', import.meta.url)),
        openapiStrict: true,
      },
    });
    const post = (body: string) =>
      h2Request(
        cleanup,
        sidecar.urls.ingress,
        {
          ':method': 'POST',
          ':path': '/echo/v1/pets',
          'content-type': 'application/json',
          'x-tenant': 'acme',
        },
        body,
      );
    const invalid = await post(JSON.stringify({ name: '', age: -1, color: 'red' }));
    assert.equal(invalid.headers[':status'], 400);
    assert.equal(invalid.headers['content-type'], 'application/problem+json');
    const problem = JSON.parse(invalid.body) as { code: string; errors: { in: string; path: string }[] };
    assert.equal(problem.code, 'MESH_BAD_REQUEST');
    assert.deepEqual(problem.errors.map((e) => `${e.in}:${e.path}`).sort(), [
      'body:/age',
      'body:/color',
      'body:/name',
    ]);
    const valid = await post(JSON.stringify({ name: 'Rex', age: 3 }));
    assert.equal(valid.headers[':status'], 200, valid.body);
    assert.deepEqual((JSON.parse(valid.body) as { body: unknown }).body, { name: 'Rex', age: 3 });
    const unknown = await h2Request(cleanup, sidecar.urls.ingress, { ':path': '/echo/v1/owners' });
    assert.equal(unknown.headers[':status'], 404);
  });

  it('an HTTP/2 client reaches an HTTP/1.1 app through the ingress, with :authority as Host', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const app = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(201, { 'content-type': 'text/plain', 'x-app': 'h1' }).end(`${req.method} ${req.url}`);
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise((resolve) => app.close(resolve)));
    const sidecar = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
      },
    });

    const answer = await h2Request(
      cleanup,
      sidecar.urls.ingress,
      {
        ':method': 'POST',
        ':path': '/orders?x=1',
        ':authority': 'shop.example',
      },
      'payload',
    );
    assert.equal(answer.headers[':status'], 201);
    assert.equal(answer.headers['x-app'], 'h1');
    assert.equal(typeof answer.headers['x-request-id'], 'string');
    assert.equal(answer.body, 'POST /orders?x=1');
    assert.equal(seen[0].host, 'shop.example');
    assert.equal(seen[0]['x-forwarded-host'], 'shop.example');
    assert.equal(seen[0][':authority'], undefined, 'no pseudo-header leaks into HTTP/1.1');

    // With `http2: false` the listener is HTTP/1.1 only: the preface is a malformed request.
    const h1Only = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        http2: false,
        target: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
      },
    });
    const refused = http2.connect(h1Only.urls.ingress);
    cleanup.defer(() => refused.destroy());
    const outcome = await new Promise<string>((resolve) => {
      refused.once('error', (err: Error) => resolve(`error: ${err.message}`));
      refused.once('close', () => resolve('closed'));
      const stream = refused.request({ ':path': '/' });
      stream.on('error', () => undefined);
      stream.on('response', () => resolve('answered'));
    });
    assert.notEqual(outcome, 'answered');
  });

  it('egress: an HTTP/2 stream the upstream refused or never processed is sent again, whatever the method', async () => {
    const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;
    // Requests seen per path, and what the server does with them: the first /refuse stream is
    // refused (RST_STREAM REFUSED_STREAM); the first /goaway stream gets a GOAWAY whose last stream
    // id is the one before it (a server shutting down; 0 would mean "the last one I took", so this
    // needs a stream before it on the session: /refuse's); every /reset stream is reset after its
    // request came.
    const seen = new Map<string, number>();
    const upstream = http2.createServer();
    upstream.on('stream', (stream, headers) => {
      const path = String(headers[':path']);
      const n = (seen.get(path) ?? 0) + 1;
      seen.set(path, n);
      stream.on('error', () => undefined);
      stream.resume();
      if (path === '/refuse' && n === 1) stream.close(NGHTTP2_REFUSED_STREAM);
      else if (path === '/goaway' && n === 1) stream.session?.goaway(NGHTTP2_NO_ERROR, stream.id! - 2);
      else if (path === '/reset') stream.on('end', () => stream.close(NGHTTP2_INTERNAL_ERROR));
      else
        stream.on('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(`done ${path} #${n}`);
        });
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    upstream.on('session', (session) => sessions.add(session));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => {
      // The session that sent GOAWAY still holds the stream it never answered.
      for (const session of sessions) session.destroy();
      return new Promise<void>((resolve) => upstream.close(() => resolve()));
    });
    const sidecar = await startEgressSidecar(cleanup, {
      h2svc: {
        endpoints: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`],
        protocol: 'http2',
        retry: { attempts: 3, baseBackoffMs: 1, maxBackoffMs: 2 },
      },
    });
    const post = async (path: string) => {
      const answer = await request(`${sidecar.urls.egress}${path}`, {
        method: 'POST',
        headers: { host: 'h2svc', 'content-type': 'text/plain' },
        body: 'order 1',
      });
      return { status: answer.statusCode, body: await answer.body.text() };
    };

    assert.deepEqual(await post('/refuse'), { status: 200, body: 'done /refuse #2' });
    assert.deepEqual(await post('/goaway'), { status: 200, body: 'done /goaway #2' });
    // A POST the upstream received and then reset may have been processed: not sent again.
    const reset = await post('/reset');
    assert.equal(reset.status, 502);
    assert.equal(seen.get('/reset'), 1);
    assert.equal(await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="h2svc"'), 2);
  });

  it('egress: gRPC statuses count for outlier detection, metrics and retries; a Trailers-Only UNAVAILABLE is retried when the call is idempotent', async () => {
    const healthy = await startGrpcApp(cleanup);
    const sick = await startGrpcApp(cleanup, { echoFails: grpc.status.UNAVAILABLE });
    const service = (extra: Record<string, unknown>) => ({
      endpoints: [sick.url, healthy.url],
      protocol: 'http2',
      loadBalancer: 'round_robin',
      ...extra,
    });
    const sidecar = await startEgressSidecar(cleanup, {
      // Outlier detection only: a failing call is passed on, and counts against its endpoint.
      ejecting: service({
        retry: { attempts: 1 },
        outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectedPercent: 50 },
      }),
      // Retries only: gateway errors, of which UNAVAILABLE (503) is one.
      retrying: service({
        retry: { attempts: 2, retryOn: ['gateway-error'], baseBackoffMs: 1, maxBackoffMs: 2 },
      }),
    });

    const ejecting = grpcClient(cleanup, sidecar.urls.egress, 'ejecting');
    const codes: (grpc.status | undefined)[] = [];
    for (let i = 0; i < 8; i += 1) codes.push((await ejecting.unary('echo', `e${i}`)).error?.code);
    // Round robin: the sick endpoint answers every other call UNAVAILABLE until its second failure.
    const failures = codes.flatMap((code, i) => (code === undefined ? [] : [i]));
    assert.equal(failures.length, 2, `calls that failed: ${failures.join(', ')}`);
    assert.ok(
      failures[1] <= 3 && codes.every((code) => code === undefined || code === grpc.status.UNAVAILABLE),
    );
    assert.equal(
      await metricValue(sidecar.urls.admin, 'mesh_outlier_ejections_total', 'service="ejecting"'),
      1,
    );
    assert.equal(
      await metricValue(
        sidecar.urls.admin,
        'mesh_upstream_requests_total',
        'service="ejecting",result="5xx"',
      ),
      2,
    );
    const handled = (code: string) =>
      grpcHandled(sidecar.urls.admin, 'listener="egress",route="host:ejecting"', code);
    // Counted when the caller's stream closes, which may follow its answer by a moment.
    await waitFor(async () => (await handled('OK')) + (await handled('UNAVAILABLE')) === 8);
    assert.deepEqual([await handled('UNAVAILABLE'), await handled('OK')], [2, 6]);

    // Not idempotent (a gRPC call is a POST): the UNAVAILABLE goes back to the caller.
    const retrying = grpcClient(cleanup, sidecar.urls.egress, 'retrying');
    const plain = [await retrying.unary('echo', 'a'), await retrying.unary('echo', 'b')];
    assert.deepEqual(plain.map((r) => r.error?.code).sort(), [grpc.status.UNAVAILABLE, undefined].sort());
    // With an idempotency-key (gRPC metadata is HTTP/2 headers), the sick endpoint's answer is
    // retried on the other one: every call succeeds.
    const keyed = new grpc.Metadata();
    keyed.set('idempotency-key', 'k-1');
    for (let i = 0; i < 4; i += 1) {
      const result = await retrying.unary('echo', `k${i}`, keyed);
      assert.equal(result.error, null, `call ${i}: ${result.error?.message}`);
      assert.equal(result.value?.toString(), `echo:k${i}`);
    }
    const keyedOnSick = sick.seen.filter((s) => s.metadata.get('idempotency-key')[0] === 'k-1').length;
    assert.ok(keyedOnSick >= 1);
    assert.equal(
      await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="retrying"'),
      keyedOnSick,
    );
  });

  it("egress: retry conditions named by gRPC status; a retry carries what is left of the call's deadline", async () => {
    const healthy = await startGrpcApp(cleanup);
    // Fails each call UNAVAILABLE after 400 ms: a retry starts at least that far into the deadline.
    const slowSick = await startGrpcApp(cleanup, { echoFails: grpc.status.UNAVAILABLE, echoDelayMs: 400 });
    const broken = await startGrpcApp(cleanup, { echoFails: grpc.status.INTERNAL });
    const retry = (retryOn: string[]) => ({ attempts: 2, retryOn, baseBackoffMs: 1, maxBackoffMs: 2 });
    const sidecar = await startEgressSidecar(cleanup, {
      deadline: {
        endpoints: [slowSick.url, healthy.url],
        protocol: 'http2',
        loadBalancer: 'round_robin',
        retry: retry(['unavailable']),
      },
      'not-internal': { endpoints: [broken.url], protocol: 'http2', retry: retry(['unavailable']) },
      internal: { endpoints: [broken.url], protocol: 'http2', retry: retry(['internal']) },
    });
    const keyed = new grpc.Metadata();
    keyed.set('idempotency-key', 'k-deadline');

    // Round robin (the retry moves it on too): one or both calls start on the sick endpoint and are
    // retried on the healthy one.
    const deadlineClient = grpcClient(cleanup, sidecar.urls.egress, 'deadline');
    const deadlines: number[] = [];
    for (const body of ['d1', 'd2']) {
      deadlines.push(Date.now() + 5_000);
      const result = await deadlineClient.unary('echo', body, keyed, 5_000);
      assert.equal(result.error, null, `${body}: ${result.error?.message}`);
    }
    assert.ok(slowSick.seen.length >= 1);
    assert.equal(
      await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="deadline"'),
      slowSick.seen.length,
    );
    // Each call reached the healthy endpoint with the deadline its caller set, not a fresh 5 s from
    // the retry (which would lie 400 ms or more beyond it); grpc-js's client sets its deadline a
    // moment after `deadlines` were taken, and transit adds a little more.
    assert.equal(healthy.seen.length, 2);
    healthy.seen.forEach((seen, i) => {
      const late = seen.deadline! - deadlines[i];
      assert.ok(late > -1_000 && late < 250, `call ${i + 1}: deadline ${late} ms after the caller's`);
    });

    // `unavailable` does not retry INTERNAL (the 5xx mapping would); `internal` does.
    const notInternal = await grpcClient(cleanup, sidecar.urls.egress, 'not-internal').unary(
      'echo',
      'x',
      keyed,
    );
    assert.equal(notInternal.error?.code, grpc.status.INTERNAL);
    assert.equal(broken.seen.length, 1);
    const internal = await grpcClient(cleanup, sidecar.urls.egress, 'internal').unary('echo', 'y', keyed);
    assert.equal(internal.error?.code, grpc.status.INTERNAL);
    assert.equal(broken.seen.length, 3, 'tried twice');
    assert.deepEqual(
      [
        await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="not-internal"'),
        await metricValue(sidecar.urls.admin, 'mesh_upstream_retries_total', 'service="internal"'),
      ],
      [0, 1],
    );
  });

  it('egress: a gRPC service is health-checked with grpc.health.v1; a NOT_SERVING endpoint gets no calls', async () => {
    const serving = { status: 1 };
    const draining = { status: 2 };
    const apps = [
      await startGrpcApp(cleanup, { health: serving }),
      await startGrpcApp(cleanup, { health: draining }),
    ];
    const sidecar = await startEgressSidecar(cleanup, {
      orders: {
        endpoints: apps.map((app) => app.url),
        protocol: 'http2',
        healthCheck: {
          grpcService: 'mesh.test.Echo',
          intervalMs: 20,
          unhealthyThreshold: 2,
          healthyThreshold: 1,
        },
      },
    });
    const unhealthy = () =>
      metricValue(sidecar.urls.admin, 'mesh_upstream_unhealthy_endpoints', 'service="orders"');
    await waitFor(async () => (await unhealthy()) === 1, { what: 'the NOT_SERVING endpoint taken out' });
    const orders = grpcClient(cleanup, sidecar.urls.egress, 'orders');
    for (let i = 0; i < 6; i += 1) assert.equal((await orders.unary('echo', `c${i}`)).error, null);
    assert.deepEqual(
      apps.map((app) => app.seen.length),
      [6, 0],
    );
    draining.status = 1;
    await waitFor(async () => (await unhealthy()) === 0, { what: 'back once it serves' });
    for (let i = 0; i < 6; i += 1) assert.equal((await orders.unary('echo', `d${i}`)).error, null);
    assert.equal(apps[1].seen.length, 3);
  });

  it("egress: a gRPC call's grpc-timeout is its deadline in place of timeoutMs, a long stream included", async () => {
    const app = await startGrpcApp(cleanup);
    const silent = await startSilentH2App(cleanup);
    const sidecar = await startEgressSidecar(cleanup, {
      orders: { endpoints: [app.url], protocol: 'http2', timeoutMs: 300 },
      silent: { endpoints: [silent], protocol: 'http2', timeoutMs: 300 },
    });
    const orders = grpcClient(cleanup, sidecar.urls.egress, 'orders');
    // 8 messages 100 ms apart: 800 ms, past timeoutMs, within the caller's 10 s deadline.
    const streamed = await orders.count(8, { everyMs: 100, deadlineMs: 10_000 });
    assert.equal(streamed.join(','), '1,2,3,4,5,6,7,8');
    // Without a deadline, timeoutMs bounds the call: the stream is cut.
    await assert.rejects(orders.count(8, { everyMs: 100 }));

    // A caller that does not enforce its own deadline (a raw HTTP/2 request with grpc-timeout), to a
    // service that never answers (nor enforces the deadline, as a grpc-js app would, racing the
    // sidecar): the sidecar answers DEADLINE_EXCEEDED at that deadline, not at timeoutMs, and says
    // which limit it was.
    const answer = await rawGrpcCall(cleanup, sidecar.urls.egress, {
      ':authority': 'silent',
      'grpc-timeout': '600m',
    });
    assert.equal(answer.headers['grpc-status'], '4', JSON.stringify(answer.headers));
    assert.match(String(answer.headers['grpc-message']), /grpc-timeout \(600 ms\)/);
  });

  it('ingress: gRPC-Web calls over HTTP/1.1 (binary and base64 text) reach the gRPC app; trailers come back as the trailer frame', async () => {
    const app = await startGrpcApp(cleanup);
    const sidecar = await startTestSidecar(cleanup, {
      ingress: { host: '127.0.0.1', port: 0, target: app.url, targetProtocol: 'http2' },
    });
    const frame = (payload: string) => {
      const bytes = Buffer.from(payload);
      const head = Buffer.alloc(5);
      head.writeUInt32BE(bytes.length, 1);
      return Buffer.concat([head, bytes]);
    };
    /** The frames of a gRPC-Web body: [flag, payload] each (0x80: the trailer frame). */
    const frames = (body: Buffer) => {
      const out: [number, string][] = [];
      for (let at = 0; at < body.length;) {
        const length = body.readUInt32BE(at + 1);
        out.push([body[at], body.subarray(at + 5, at + 5 + length).toString()]);
        at += 5 + length;
      }
      return out;
    };
    const call = async (path: string, message: string, contentType: string) => {
      const text = contentType.startsWith('application/grpc-web-text');
      const answer = await request(`${sidecar.urls.ingress}${path}`, {
        method: 'POST',
        headers: { 'content-type': contentType, 'x-grpc-web': '1', accept: contentType },
        body: text ? frame(message).toString('base64') : frame(message),
      });
      const raw = Buffer.from(await answer.body.arrayBuffer());
      return {
        status: answer.statusCode,
        contentType: answer.headers['content-type'],
        trailers: answer.trailers,
        frames: frames(text ? Buffer.from(raw.toString('latin1'), 'base64') : raw),
      };
    };

    const unary = await call(ECHO_SERVICE.echo.path, 'web', 'application/grpc-web+proto');
    assert.equal(unary.status, 200);
    assert.equal(unary.contentType, 'application/grpc-web+proto');
    assert.deepEqual(unary.frames[0], [0, 'echo:web']);
    assert.equal(unary.frames.length, 2);
    const [flag, block] = unary.frames[1];
    assert.equal(flag, 0x80);
    assert.match(block, /^grpc-status:0\r\n/m);
    assert.match(block, /^x-app-trailer:done\r\n/m);
    assert.deepEqual(unary.trailers, {}, 'no HTTP trailers: browsers cannot read them');

    const text = await call(ECHO_SERVICE.echo.path, 'in base64', 'application/grpc-web-text+proto');
    assert.equal(text.contentType, 'application/grpc-web-text+proto');
    assert.deepEqual(text.frames[0], [0, 'echo:in base64']);
    assert.match(text.frames[1][1], /grpc-status:0/);

    // An error before any message (the app's Trailers-Only answer): the status in the trailer frame.
    const failed = await call(ECHO_SERVICE.fail.path, '9', 'application/grpc-web+proto');
    assert.equal(failed.frames.length, 1);
    assert.match(failed.frames[0][1], /grpc-status:5\r\n/);
    assert.match(failed.frames[0][1], /grpc-message:no%20order%209\r\n/, 'percent-encoded, as gRPC sends it');

    // Server streaming in text mode, one message every 10 ms: each arrives in a chunk of its own,
    // 6 or 7 bytes, so the base64 encoding carries incomplete 3-byte groups from chunk to chunk.
    const streamed = await call(ECHO_SERVICE.count.path, '12/10', 'application/grpc-web-text');
    assert.deepEqual(
      streamed.frames.slice(0, -1).map(([, payload]) => payload),
      Array.from({ length: 12 }, (_, i) => String(i + 1)),
    );
    assert.equal(streamed.frames.at(-1)![0], 0x80);

    await waitFor(
      async () =>
        (await grpcHandled(sidecar.urls.admin, 'listener="ingress",route="forward"', 'NOT_FOUND')) === 1,
      { what: 'gRPC-Web calls counted by their status' },
    );
  });

  it("ingress: a gRPC call's grpc-timeout bounds its wait for the app in place of ingress.timeoutMs", async () => {
    const app = await startGrpcApp(cleanup);
    const sidecar = await startTestSidecar(cleanup, {
      ingress: { host: '127.0.0.1', port: 0, target: app.url, targetProtocol: 'http2', timeoutMs: 300 },
    });
    // The first message (and with it the response headers) after 450 ms: past timeoutMs, within the deadline.
    const late = await grpcClient(cleanup, sidecar.urls.ingress).count(1, {
      everyMs: 450,
      deadlineMs: 5_000,
    });
    assert.deepEqual(late, ['1']);
    // Raw HTTP/2 callers, which do not enforce a deadline themselves, to an app that never answers
    // (nor enforces the deadline, as the grpc-js app would, racing the sidecar).
    const silent = await startTestSidecar(cleanup, {
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: await startSilentH2App(cleanup),
        targetProtocol: 'http2',
        timeoutMs: 300,
      },
    });
    const hang = (extra: http2.OutgoingHttpHeaders) => rawGrpcCall(cleanup, silent.urls.ingress, extra);
    const withDeadline = await hang({ 'grpc-timeout': '600m' });
    assert.equal(withDeadline.headers['grpc-status'], '4');
    assert.match(String(withDeadline.headers['grpc-message']), /grpc-timeout \(600 ms\)/);
    const without = await hang({});
    assert.equal(without.headers['grpc-status'], '4');
    assert.match(String(without.headers['grpc-message']), /within 300 ms/);
  });
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { EndpointSet, type Endpoint } from './endpoints.js';
import {
  checkEndpoint,
  grpcHealthRequest,
  grpcServingStatus,
  HealthChecker,
  type HealthCheckPolicy,
} from './health-check.js';

/** An app on port 0 whose health endpoint answers `status` (or never, with `hang`). */
async function startApp(): Promise<{
  url: string;
  state: { status: number; hang: boolean };
  close: () => void;
}> {
  const state = { status: 200, hang: false };
  const server = http.createServer((req, res) => {
    if (state.hang) return;
    res.writeHead(req.url === '/healthz' ? state.status : 404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('HealthChecker', () => {
  const policy: HealthCheckPolicy = {
    probe: { kind: 'http', path: '/healthz' },
    port: undefined,
    headers: {},
    intervalMs: 60_000,
    timeoutMs: 100,
    unhealthyThreshold: 2,
    healthyThreshold: 3,
  };
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function setUp() {
    const apps = [await startApp(), await startApp()];
    for (const app of apps) closers.push(app.close);
    const endpoints = new EndpointSet({ connectTimeoutMs: 1000 });
    endpoints.update(apps.map((app) => app.url));
    closers.push(() => endpoints.destroy());
    const changes: string[] = [];
    const checker = new HealthChecker(policy, endpoints, {
      checked: () => undefined,
      changed: (endpoint: Endpoint, healthy: boolean, detail: string) =>
        changes.push(
          `${apps.findIndex((app) => app.url === endpoint.origin)} ${healthy ? 'up' : 'down'}: ${detail}`,
        ),
    });
    closers.push(() => checker.stop());
    return { apps, endpoints, checker, changes };
  }

  it('flips an endpoint only after the thresholds of checks in a row', async () => {
    const { apps, endpoints, checker, changes } = await setUp();
    const all = endpoints.all;
    assert.equal(checker.eligible(all), all, 'healthy until told otherwise');
    apps[1].state.status = 503;
    await checker.checkNow();
    assert.equal(checker.eligible(all), all, 'one failure is below the threshold');
    await checker.checkNow();
    assert.deepEqual(checker.eligible(all), [all[0]]);
    assert.equal(checker.eligible(all), checker.eligible(all), 'the same array while nothing changes');
    assert.deepEqual(changes, ['1 down: status 503']);

    apps[1].state.status = 200;
    await checker.checkNow();
    await checker.checkNow();
    // A failure in between starts the count again.
    apps[1].state.status = 500;
    await checker.checkNow();
    apps[1].state.status = 204;
    for (let i = 0; i < 2; i += 1) await checker.checkNow();
    assert.deepEqual(checker.eligible(all), [all[0]], 'two passes after a failure are not three in a row');
    await checker.checkNow();
    assert.equal(checker.eligible(all), all);
    assert.deepEqual(changes, ['1 down: status 503', '1 up: 3 checks passed']);
  });

  it('fails a check that gets no answer within timeoutMs, and uses every endpoint when none is healthy', async () => {
    const { apps, endpoints, checker, changes } = await setUp();
    apps[0].state.hang = true;
    apps[1].state.status = 302; // 3xx passes, as for a Kubernetes probe
    await checker.checkNow();
    await checker.checkNow();
    assert.deepEqual(checker.eligible(endpoints.all), [endpoints.all[1]]);
    assert.deepEqual(changes, ['0 down: no answer within 100 ms']);
    apps[1].state.status = 500;
    await checker.checkNow();
    await checker.checkNow();
    assert.equal(checker.eligible(endpoints.all), endpoints.all, 'panic: none healthy, all used');
  });

  it('checks on its own every interval once started, and not after stop', async () => {
    const { apps, endpoints, changes } = await setUp();
    apps[0].state.status = 503;
    const checker = new HealthChecker({ ...policy, intervalMs: 10, unhealthyThreshold: 1 }, endpoints, {
      checked: () => undefined,
      changed: (_endpoint, healthy) => changes.push(healthy ? 'up' : 'down'),
    });
    checker.start();
    closers.push(() => checker.stop());
    for (let i = 0; changes.length === 0; i += 1) {
      assert.ok(i < 200, 'no check ran');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(changes, ['down']);
    checker.stop();
    apps[0].state.status = 200;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!checker.isHealthy(endpoints.all[0]), 'stopped: no more checks');
  });
});

describe('gRPC health checks', () => {
  /** A gRPC health message frame: `HealthCheckResponse { status }`. */
  const answerFrame = (status: number) => Buffer.from([0, 0, 0, 0, 2, 0x08, status]);

  it('encodes the request and reads the serving status as grpc.health.v1 defines them', () => {
    assert.deepEqual(grpcHealthRequest(''), Buffer.from([0, 0, 0, 0, 0]));
    assert.deepEqual(
      grpcHealthRequest('shop.Orders'),
      Buffer.from([0, 0, 0, 0, 13, 0x0a, 11, ...Buffer.from('shop.Orders')]),
    );
    assert.equal(
      grpcHealthRequest('x'.repeat(200)).subarray(5, 8).toString('hex'),
      '0ac801',
      'a two-byte length',
    );
    assert.equal(grpcServingStatus(answerFrame(1)), 'SERVING');
    assert.equal(grpcServingStatus(answerFrame(2)), 'NOT_SERVING');
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 0])), 'UNKNOWN', 'an empty message is status 0');
    assert.equal(grpcServingStatus(Buffer.from([1, 0, 0, 0, 2, 0x08, 1])), 'a compressed message');
    // An unknown length-delimited field before the status is skipped.
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 6, 0x12, 2, 0x61, 0x62, 0x08, 1])), 'SERVING');
    assert.equal(grpcServingStatus(Buffer.from([0, 0, 0, 0, 1, 0x08])), 'a malformed message');
  });

  it('passes a SERVING answer and fails NOT_SERVING, an unknown service and a server without the health service', async () => {
    const statusOf: Record<string, number> = { 'shop.Orders': 1, 'shop.Payments': 2 };
    const asked: string[] = [];
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        const service = body.length > 5 ? body.subarray(7).toString() : '';
        asked.push(`${String(headers[':method'])} ${String(headers[':path'])} ${service}`);
        if (service === 'gone') {
          // Trailers-Only, as servers without the health service (UNIMPLEMENTED) or a service they
          // do not know (NOT_FOUND) answer.
          stream.respond(
            { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5' },
            { endStream: true },
          );
          return;
        }
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(answerFrame(statusOf[service] ?? 1));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const endpoints = new EndpointSet({ connectTimeoutMs: 1000, protocol: 'http2' });
    endpoints.update([`http://127.0.0.1:${(server.address() as AddressInfo).port}`]);
    try {
      const check = (service: string) =>
        checkEndpoint(endpoints.all[0], {
          probe: { kind: 'grpc', service },
          port: undefined,
          headers: {},
          intervalMs: 1000,
          timeoutMs: 1000,
          unhealthyThreshold: 1,
          healthyThreshold: 1,
        });
      assert.deepEqual(
        [await check('shop.Orders'), await check('shop.Payments'), await check('gone'), await check('')],
        [undefined, 'NOT_SERVING', 'grpc-status 5', undefined],
      );
      assert.deepEqual(asked, [
        'POST /grpc.health.v1.Health/Check shop.Orders',
        'POST /grpc.health.v1.Health/Check shop.Payments',
        'POST /grpc.health.v1.Health/Check gone',
        'POST /grpc.health.v1.Health/Check ',
      ]);
    } finally {
      await endpoints.destroy();
      server.close();
    }
  });
});

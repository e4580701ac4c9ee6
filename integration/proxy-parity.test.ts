/**
 * light-mesh proxy parity (issue 14) through the real sidecar process: egress service-id addressing,
 * header rules both ways, X-Scope-Token, ingress IP allow/deny, API keys, basic auth, CORS,
 * mirroring and fault injection. No Kafka broker.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort } from '../scripts/lib/ports.js';
import { metricValue, startTestSidecar, type SidecarProcess } from './helpers/sidecar-process.js';
import { TestUpstream } from './helpers/upstream.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

async function upstream(cleanup: CleanupStack, name: string): Promise<TestUpstream> {
  const up = await new TestUpstream({ name }).start();
  cleanup.defer(() => up.stop());
  return up;
}

/** Binomial tolerance: |count - n p| within 5 standard deviations (fails about once in 3.5 million). */
function assertRate(count: number, n: number, percent: number, what: string): void {
  const p = percent / 100;
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(
    Math.abs(count - n * p) <= 5 * sd,
    `${what}: ${count} of ${n}, expected about ${n * p} ± ${5 * sd}`,
  );
}

describe('proxy parity through the sidecar process', function () {
  this.timeout(90_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  const start = (config: Record<string, unknown>) => startTestSidecar(cleanup, config);

  describe('egress', () => {
    it('routes by service_id, service_url, path prefix and path@method beside Host', async () => {
      const orders = await upstream(cleanup, 'orders');
      const users = await upstream(cleanup, 'users');
      const sidecar = await start({
        egress: {
          host: '127.0.0.1',
          port: 0,
          services: { orders: { endpoints: [orders.url] }, users: { endpoints: [users.url] } },
          serviceIds: {
            pathPrefixes: { '/v1/users': 'users' },
            pathMethods: { '/v1/orders/{id}@delete': 'orders' },
          },
        },
      });
      const egress = sidecar.urls.egress;
      const call = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
        const res = await request(`${egress}${path}`, { method: method as 'GET', headers });
        const body = await res.body.text();
        return {
          status: res.statusCode,
          upstream: res.statusCode === 200 ? (JSON.parse(body) as { upstream: string }).upstream : undefined,
        };
      };
      assert.deepEqual(await call('/a', { service_id: 'orders' }), { status: 200, upstream: 'orders' });
      assert.deepEqual(await call('/a', { service_id: 'users' }), { status: 200, upstream: 'users' });
      assert.deepEqual(await call('/a', { service_url: `${users.url}/x` }), {
        status: 200,
        upstream: 'users',
      });
      assert.equal((await call('/a', { service_id: 'nope' })).status, 404);
      assert.equal((await call('/a', { service_url: 'http://127.0.0.1:1' })).status, 404);
      assert.deepEqual(await call('/v1/users/7'), { status: 200, upstream: 'users' });
      assert.deepEqual(await call('/v1/orders/7', {}, 'DELETE'), { status: 200, upstream: 'orders' });
      assert.equal((await call('/v1/orders/7', {}, 'GET')).status, 404);
      // Host routing still works, and the service_id header wins over it.
      assert.deepEqual(await call('/h', { host: 'orders' }), { status: 200, upstream: 'orders' });
      assert.deepEqual(await call('/h', { host: 'orders', service_id: 'users' }), {
        status: 200,
        upstream: 'users',
      });
      assert.equal(users.requests.find((r) => r.url === '/v1/users/7')?.url, '/v1/users/7');
    });

    it('applies per-service header rules both ways and rewrites Host', async () => {
      const users = await upstream(cleanup, 'users');
      users.setBehaviour({
        kind: 'ok',
        headers: { 'x-powered-by': 'express', 'cache-control': 'max-age=60' },
      });
      const sidecar = await start({
        egress: {
          host: '127.0.0.1',
          port: 0,
          services: {
            users: {
              endpoints: [users.url],
              headers: {
                request: { set: { 'x-tenant': 'acme' }, add: { 'x-tags': 'mesh' }, remove: ['x-internal'] },
                response: { set: { 'cache-control': 'no-store' }, remove: ['x-powered-by'] },
                host: 'users.internal',
              },
            },
          },
        },
      });
      const res = await request(`${sidecar.urls.egress}/p`, {
        headers: { host: 'users', 'x-internal': 'secret', 'x-tags': 'app', 'x-tenant': 'other' },
      });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['x-powered-by'], undefined);
      const seen = users.requests[0].headers;
      assert.equal(seen['x-tenant'], 'acme');
      assert.equal(seen['x-tags'], 'app, mesh');
      assert.equal(seen['x-internal'], undefined);
      assert.equal(seen.host, 'users.internal');
    });

    it('puts the client-credentials token in X-Scope-Token when the app sent Authorization', async () => {
      const secure = await upstream(cleanup, 'secure');
      const tokenServer = http.createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'cc-token', token_type: 'Bearer', expires_in: 300 }));
      });
      tokenServer.listen(0, '127.0.0.1');
      await once(tokenServer, 'listening');
      cleanup.defer(() => new Promise((resolve) => tokenServer.close(resolve)));
      const tokenUrl = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
      const sidecar = await start({
        egress: {
          host: '127.0.0.1',
          port: 0,
          services: {
            secure: {
              endpoints: [secure.url],
              oauth2: { tokenUrl, clientId: 'app', clientSecret: 's', scopeTokenHeader: 'X-Scope-Token' },
            },
          },
        },
      });
      for (const headers of [{ host: 'secure', authorization: 'Bearer user-token' }, { host: 'secure' }]) {
        const res = await request(`${sidecar.urls.egress}/x`, { headers });
        await res.body.text();
        assert.equal(res.statusCode, 200);
      }
      assert.equal(secure.requests[0].headers.authorization, 'Bearer user-token');
      assert.equal(secure.requests[0].headers['x-scope-token'], 'Bearer cc-token');
      assert.equal(secure.requests[1].headers.authorization, 'Bearer cc-token');
      assert.equal(secure.requests[1].headers['x-scope-token'], undefined);
    });
  });

  describe('ingress', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mesh-parity-'));
      cleanup.defer(() => rm(dir, { recursive: true, force: true }));
    });

    async function startIngress(app: TestUpstream, routes: unknown[]): Promise<SidecarProcess> {
      return start({
        ingress: { host: '127.0.0.1', port: 0, target: app.url, timeoutMs: 10_000, routes },
      });
    }

    it('applies route header rules both ways', async () => {
      const app = await upstream(cleanup, 'app');
      app.setBehaviour({ kind: 'ok', headers: { 'x-powered-by': 'express' } });
      const sidecar = await startIngress(app, [
        {
          prefix: '/h',
          // The key is checked before the request rules remove it: the app never sees it.
          auth: 'apiKey',
          apiKey: { keys: ['k'] },
          headers: {
            request: { set: { 'x-from-mesh': 'yes' }, remove: ['x-drop', 'x-api-key'] },
            response: { set: { 'cache-control': 'no-store' }, remove: ['x-powered-by'] },
          },
        },
      ]);
      const res = await request(`${sidecar.urls.ingress}/h/1`, {
        headers: { 'x-drop': '1', 'x-api-key': 'k' },
      });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['x-powered-by'], undefined);
      assert.equal(app.requests[0].headers['x-from-mesh'], 'yes');
      assert.equal(app.requests[0].headers['x-drop'], undefined);
      assert.equal(app.requests[0].headers['x-api-key'], undefined);
      // Other paths are untouched.
      const other = await request(`${sidecar.urls.ingress}/other`);
      await other.body.text();
      assert.equal(other.headers['x-powered-by'], 'express');
    });

    it('allows and denies by client address', async () => {
      const app = await upstream(cleanup, 'app');
      const sidecar = await startIngress(app, [
        { prefix: '/denied', deny: ['127.0.0.0/8', '::1'] },
        { prefix: '/allowed', allow: ['127.0.0.1/32', '::1'] },
        { prefix: '/elsewhere', allow: ['10.0.0.0/8'] },
      ]);
      const status = async (path: string) => {
        const res = await request(`${sidecar.urls.ingress}${path}`);
        await res.body.text();
        return res.statusCode;
      };
      assert.equal(await status('/denied/x'), 403);
      assert.equal(await status('/allowed/x'), 200);
      assert.equal(await status('/elsewhere'), 403);
      assert.equal(app.count(), 1);
    });

    it('accepts and refuses API keys (header, query, file) and basic auth users', async () => {
      const app = await upstream(cleanup, 'app');
      await writeFile(join(dir, 'keys.txt'), '# keys\nfile-key\n');
      const hashed = createHash('sha256').update('alice-pw').digest('hex');
      await writeFile(join(dir, 'users.txt'), `alice:sha256:${hashed}\nbob:bob-pw\n`);
      const sidecar = await startIngress(app, [
        {
          prefix: '/keyed',
          auth: 'apiKey',
          apiKey: {
            header: 'x-api-key',
            query: 'api_key',
            keys: ['inline-key'],
            keysFile: join(dir, 'keys.txt'),
          },
        },
        { prefix: '/basic', auth: 'basic', basicAuth: { usersFile: join(dir, 'users.txt') } },
        { prefix: '/open', auth: 'none' },
      ]);
      const status = async (path: string, headers: Record<string, string> = {}) => {
        const res = await request(`${sidecar.urls.ingress}${path}`, { headers });
        await res.body.text();
        return { status: res.statusCode, challenge: res.headers['www-authenticate'] };
      };
      const basic = (user: string, pw: string) => ({
        authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`,
      });
      assert.equal((await status('/keyed/a', { 'x-api-key': 'inline-key' })).status, 200);
      assert.equal((await status('/keyed/a', { 'x-api-key': 'file-key' })).status, 200);
      assert.equal((await status('/keyed/a?api_key=file-key')).status, 200);
      assert.equal((await status('/keyed/a', { 'x-api-key': 'wrong' })).status, 401);
      assert.equal((await status('/keyed/a')).status, 401);
      assert.equal((await status('/basic', basic('alice', 'alice-pw'))).status, 200);
      assert.equal((await status('/basic', basic('bob', 'bob-pw'))).status, 200);
      const refused = await status('/basic', basic('alice', 'bob-pw'));
      assert.equal(refused.status, 401);
      assert.match(String(refused.challenge), /^Basic realm=/);
      assert.equal((await status('/basic')).status, 401);
      assert.equal((await status('/open')).status, 200);
      assert.equal(app.count(), 6);
    });

    it('answers CORS preflights and marks responses to allowed origins', async () => {
      const app = await upstream(cleanup, 'app');
      const sidecar = await startIngress(app, [
        {
          prefix: '/api',
          auth: 'apiKey',
          apiKey: { keys: ['k'] },
          cors: { allowOrigins: ['https://app.example'], exposeHeaders: ['x-request-id'] },
        },
      ]);
      const preflight = await request(`${sidecar.urls.ingress}/api/items`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://app.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, x-api-key',
        },
      });
      await preflight.body.text();
      assert.equal(preflight.statusCode, 204);
      assert.match(
        String(preflight.headers['x-request-id']),
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
      assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
      assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
      assert.equal(preflight.headers['access-control-allow-headers'], 'content-type, x-api-key');
      assert.equal(app.count(), 0, 'the preflight never reaches the app');
      const real = await request(`${sidecar.urls.ingress}/api/items`, {
        headers: { origin: 'https://app.example', 'x-api-key': 'k' },
      });
      await real.body.text();
      assert.equal(real.statusCode, 200);
      assert.equal(real.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(real.headers['access-control-expose-headers'], 'x-request-id');
      const foreign = await request(`${sidecar.urls.ingress}/api/items`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      await foreign.body.text();
      assert.equal(foreign.headers['access-control-allow-origin'], undefined);
      assert.notEqual(foreign.statusCode, 204);
    });

    it('mirrors about 50% of requests and never lets the shadow affect the real answer', async () => {
      const app = await upstream(cleanup, 'app');
      const shadow = await upstream(cleanup, 'shadow');
      const slowShadow = await upstream(cleanup, 'slow-shadow');
      slowShadow.setBehaviour({ kind: 'hang' });
      const sidecar = await startIngress(app, [
        { prefix: '/m', mirror: { target: shadow.url, percent: 50 } },
        { prefix: '/down', mirror: { target: `http://127.0.0.1:${await freePort()}`, percent: 100 } },
        { prefix: '/slow', mirror: { target: slowShadow.url, percent: 100, timeoutMs: 60_000 } },
      ]);
      const n = 400;
      for (let i = 0; i < n; i += 1) {
        const res = await request(`${sidecar.urls.ingress}/m/${i}`);
        await res.body.text();
        assert.equal(res.statusCode, 200);
      }
      const admin = sidecar.urls.admin;
      const sent = await waitFor(
        async () => {
          const value = await metricValue(
            admin,
            'mesh_ingress_mirrored_requests_total',
            'prefix="/m",result="sent"',
          );
          return value === shadow.count() && value > 0 ? value : undefined;
        },
        { what: 'mirror counts to settle' },
      );
      assertRate(shadow.count(), n, 50, 'mirrored requests');
      assert.equal(sent, shadow.count());
      assert.ok(shadow.requests.every((r) => r.headers['x-mesh-mirror'] === '1'));
      assert.equal(app.count(), n);
      // A shadow that is down or never answers does not change or delay the real answers.
      for (const path of ['/down/1', '/down/2', '/slow/1', '/slow/2', '/slow/3']) {
        const res = await request(`${sidecar.urls.ingress}${path}`);
        const body = JSON.parse(await res.body.text()) as { upstream: string };
        assert.equal(res.statusCode, 200);
        assert.equal(body.upstream, 'app');
      }
      await waitFor(() => slowShadow.count() === 3, { what: 'slow shadow to receive the copies' });
      await waitFor(
        async () =>
          (await metricValue(
            admin,
            'mesh_ingress_mirrored_requests_total',
            'prefix="/down",result="failed"',
          )) === 2,
        { what: 'failed mirrors to be counted' },
      );
    });

    it('writes an audit line per request to its own stream, bodies only when asked and bounded', async () => {
      const app = await upstream(cleanup, 'app');
      app.setBehaviour({ kind: 'ok', body: 'x'.repeat(100) });
      const plain = join(dir, 'audit.log');
      const withBodies = join(dir, 'audit-bodies.log');
      const first = await start({
        ingress: {
          host: '127.0.0.1',
          port: 0,
          target: app.url,
          auditLog: { destination: plain },
          routes: [{ prefix: '/denied', deny: ['127.0.0.0/8', '::1'] }],
        },
      });
      for (const path of ['/a?q=1', '/denied']) {
        const res = await request(`${first.urls.ingress}${path}`, {
          headers: { 'x-correlation-id': `c-${path}` },
        });
        await res.body.text();
      }
      const lines = await waitFor(async () => {
        const text = await readFile(plain, 'utf8').catch(() => '');
        const parsed = text
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        return parsed.length === 2 ? parsed : undefined;
      });
      assert.deepEqual(
        lines.map((l) => [l.method, l.path, l.status, l.correlationId, l.client, l.stream]),
        [
          ['GET', '/a', 200, 'c-/a?q=1', '127.0.0.1', 'audit'],
          ['GET', '/denied', 403, 'c-/denied', '127.0.0.1', 'audit'],
        ],
      );
      assert.ok(lines.every((l) => typeof l.durationMs === 'number' && l.responseBody === undefined));
      // The operational log (stdout) has no audit lines.
      assert.ok(!first.logs.some((l) => l.msg === 'audit'));

      const second = await start({
        ingress: {
          host: '127.0.0.1',
          port: 0,
          target: app.url,
          auditLog: { destination: withBodies, captureBody: true, maxBodyBytes: 10 },
        },
      });
      const res = await request(`${second.urls.ingress}/b`);
      await res.body.text();
      const line = await waitFor(async () => {
        const text = await readFile(withBodies, 'utf8').catch(() => '');
        return text ? (JSON.parse(text.split('\n')[0]) as Record<string, unknown>) : undefined;
      });
      assert.equal(line.responseBody, 'xxxxxxxxxx');
    });

    it('tees request bodies to the shadow up to maxBodyBytes, and never mirrors refused requests', async () => {
      const app = await upstream(cleanup, 'app');
      const shadow = await upstream(cleanup, 'shadow');
      const sidecar = await startIngress(app, [
        { prefix: '/body', mirror: { target: shadow.url, percent: 100, maxBodyBytes: 1_000 } },
        {
          prefix: '/keyed',
          auth: 'apiKey',
          apiKey: { keys: ['k'] },
          mirror: { target: shadow.url, percent: 100 },
        },
      ]);
      const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
        const res = await request(`${sidecar.urls.ingress}${path}`, { method: 'POST', body, headers });
        await res.body.text();
        return res.statusCode;
      };
      assert.equal(await post('/body/small', 'hello shadow'), 200);
      assert.equal(await post('/body/large', 'x'.repeat(5_000)), 200);
      assert.equal(await post('/keyed/no-key', 'secret'), 401);
      assert.equal(await post('/keyed/with-key', 'ok', { 'x-api-key': 'k' }), 200);
      await waitFor(
        async () =>
          (await metricValue(
            sidecar.urls.admin,
            'mesh_ingress_mirrored_requests_total',
            'prefix="/body",result="skipped"',
          )) === 1 &&
          (await metricValue(
            sidecar.urls.admin,
            'mesh_ingress_mirrored_requests_total',
            'prefix="/keyed",result="skipped"',
          )) === 1 &&
          shadow.count() === 2,
        { what: 'mirrors to settle' },
      );
      assert.deepEqual(shadow.requests.map((r) => [r.method, r.url, r.body]).sort(), [
        ['POST', '/body/small', 'hello shadow'],
        ['POST', '/keyed/with-key', 'ok'],
      ]);
      assert.equal(app.requests.find((r) => r.url === '/body/large')?.body.length, 5_000);
    });

    it('injects aborts and delays at the configured rates', async () => {
      const app = await upstream(cleanup, 'app');
      const sidecar = await startIngress(app, [
        { prefix: '/fault', fault: { abortPercent: 30, abortStatus: 418, delayPercent: 20, delayMs: 1 } },
      ]);
      const n = 1_000;
      let aborted = 0;
      for (let i = 0; i < n; i += 1) {
        const res = await request(`${sidecar.urls.ingress}/fault/${i}`);
        await res.body.text();
        if (res.statusCode === 418) {
          aborted += 1;
          assert.equal(res.headers['x-mesh-error'], 'fault-injected');
          assert.match(
            String(res.headers['x-request-id']),
            /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
          );
        } else assert.equal(res.statusCode, 200);
      }
      assertRate(aborted, n, 30, 'aborted requests');
      assert.equal(app.count(), n - aborted);
      const delayed = await metricValue(
        sidecar.urls.admin,
        'mesh_ingress_injected_faults_total',
        'prefix="/fault",kind="delay"',
      );
      // Delays are drawn among the requests that were not aborted.
      assertRate(delayed, n - aborted, 20, 'delayed requests');
      const other = await request(`${sidecar.urls.ingress}/elsewhere`);
      await other.body.text();
      assert.equal(other.statusCode, 200);
    });
  });
});

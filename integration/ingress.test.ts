import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { Client, request } from 'undici';
import { startDemoBackend, type DemoBackend } from '../services/demo-backend/server.js';
import type { ProblemDetails } from '../services/runtime/errors.js';
import { metricValue, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

const petstore = fileURLToPath(new URL('../examples/openapi/petstore.yaml', import.meta.url));
const ISSUER = 'https://issuer.test';

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

function token(key: Key, scope = 'pets:read', options: { aud?: string; exp?: number | string } = {}) {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(options.aud ?? 'petstore')
    .setSubject('alice')
    .setExpirationTime(options.exp ?? '5m')
    .sign(key.privateKey);
}

describe('ingress through the sidecar process', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  let app: DemoBackend;
  const jwks = { keys: [] as JWK[], fetches: 0, url: '' };

  beforeEach(async () => {
    app = await startDemoBackend();
    cleanup.defer(() => app.close());
    jwks.fetches = 0;
    const server = http.createServer((_req, res) => {
      jwks.fetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwks.keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwks.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    cleanup.defer(() => new Promise((resolve) => server.close(resolve)));
  });
  afterEach(() => cleanup.run());

  function config(ingress: Record<string, unknown> = {}) {
    return {
      admin: { host: '127.0.0.1', port: 0 },
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: app.url,
        timeoutMs: 10_000,
        openapi: petstore,
        ...ingress,
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
      log: { level: 'info' },
    };
  }

  async function start(cfg: unknown): Promise<SidecarProcess> {
    const sidecar = await startSidecarProcess(cfg);
    cleanup.defer(() => sidecar.cleanup());
    return sidecar;
  }

  it('with tracing off (no exporter) passes the trace headers to the app unchanged and logs the trace id', async () => {
    const sidecar = await start(config());
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await request(`${sidecar.urls.ingress}/echo/v1/pets?limit=3`, {
      headers: { 'x-tenant': 'acme', traceparent, tracestate: 'vendor=1', baggage: 'user=alice' },
    });
    assert.equal(res.statusCode, 200);
    const echo = (await res.body.json()) as { headers: Record<string, string> };
    assert.equal(echo.headers.traceparent, traceparent);
    assert.equal(echo.headers.tracestate, 'vendor=1');
    assert.equal(echo.headers.baggage, 'user=alice');
    const access = await sidecar.waitForLog((line) => line.msg === 'access' && line.listener === 'ingress');
    assert.equal(access.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('passes a valid request untouched and refuses each class of invalid request with its status', async () => {
    const sidecar = await start(config({ openapiStrict: true, maxBodyBytes: 1024 }));
    const ingress = sidecar.urls.ingress;
    const body = JSON.stringify({ name: 'Rex', tag: 'good', owner: { email: 'o@example.com' } });
    const ok = await request(`${ingress}/echo/v1/pets?limit=3`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-tenant': 'acme',
        'x-custom': 'kept',
        'x-request-id': 'rid-1',
      },
      body,
    });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.headers['x-request-id'], 'rid-1');
    const echo = (await ok.body.json()) as {
      method: string;
      path: string;
      query: unknown;
      headers: Record<string, string>;
      body: unknown;
    };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/echo/v1/pets');
    assert.deepEqual(echo.query, { limit: '3' });
    assert.equal(echo.headers['x-custom'], 'kept');
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));
    assert.deepEqual(echo.body, JSON.parse(body));

    const cases: [string, Parameters<typeof request>[1], number, string][] = [
      ['/echo/v1/pets?limit=0', { headers: { 'x-tenant': 'acme' } }, 400, 'MESH_BAD_REQUEST'],
      [
        '/echo/v1/pets',
        { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'a,b' },
        415,
        'MESH_UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        '/echo/v1/pets',
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(2048) },
        413,
        'MESH_PAYLOAD_TOO_LARGE',
      ],
      ['/echo/v1/nothing', {}, 404, 'MESH_NOT_FOUND'],
      ['/echo/v1/pets/1', { method: 'PUT' }, 405, 'MESH_METHOD_NOT_ALLOWED'],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await request(`${ingress}${path}`, init);
      assert.equal(res.statusCode, status, path);
      assert.equal(res.headers['content-type'], 'application/problem+json');
      assert.match(
        String(res.headers['x-request-id']),
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        path,
      );
      const problem = (await res.body.json()) as ProblemDetails;
      assert.equal(problem.code, code);
      assert.equal(problem.status, status);
    }
    const invalid = (await (
      await request(`${ingress}/echo/v1/pets?limit=0`, { headers: { 'x-tenant': 'acme' } })
    ).body.json()) as ProblemDetails;
    assert.deepEqual(invalid.errors, [{ in: 'query', path: '/limit', message: 'must be >= 1' }]);

    const metrics = await (await request(`${sidecar.urls.admin}/metrics`)).body.text();
    assert.match(
      metrics,
      /mesh_http_server_requests_total\{listener="ingress",method="POST",route="\/pets",status="200"\} 1/,
    );
    assert.doesNotMatch(metrics, /route="\/echo/, 'the route label is never the raw path');
  });

  it('verifies tokens from a real JWKS endpoint, refuses bad ones and picks up rotated keys', async () => {
    const keyA = await newKey('key-a');
    jwks.keys = [keyA.jwk];
    const sidecar = await start(
      config({
        jwt: {
          jwksUrl: jwks.url,
          issuer: ISSUER,
          audience: 'petstore',
          jwksCooldownMs: 0,
          forwardClaims: { sub: 'x-user' },
        },
      }),
    );
    const ingress = sidecar.urls.ingress;
    const get = (path: string, bearer?: string, method = 'GET') =>
      request(`${ingress}${path}`, {
        method: method as 'GET',
        headers: { 'x-tenant': 'acme', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      });

    const ok = await get('/echo/v1/pets/7', await token(keyA));
    assert.equal(ok.statusCode, 200);
    assert.equal(((await ok.body.json()) as { headers: Record<string, string> }).headers['x-user'], 'alice');

    const intruder = await newKey('key-a');
    const refusals: [string, string | undefined, number][] = [
      ['no token', undefined, 401],
      ['other key', await token(intruder), 401],
      ['expired', await token(keyA, 'pets:read', { exp: Math.floor(Date.now() / 1000) - 3600 }), 401],
      ['wrong audience', await token(keyA, 'pets:read', { aud: 'billing' }), 401],
    ];
    for (const [name, bearer, status] of refusals) {
      const res = await get('/echo/v1/pets/7', bearer);
      assert.equal(res.statusCode, status, name);
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/, name);
      await res.body.dump();
    }
    const noScope = await get('/echo/v1/pets/7', await token(keyA), 'DELETE');
    assert.equal(noScope.statusCode, 403);
    assert.match(String(noScope.headers['www-authenticate']), /error="insufficient_scope"/);
    await noScope.body.dump();

    const keyB = await newKey('key-b');
    jwks.keys = [keyB.jwk];
    const rotated = await get('/echo/v1/pets/7', await token(keyB));
    assert.equal(rotated.statusCode, 200);
    await rotated.body.dump();
  });

  it('sheds load beyond maxConcurrentRequests with 503 overloaded, and takes requests again as they finish', async () => {
    // No OpenAPI document: /slow is not in the petstore.
    const sidecar = await start(config({ openapi: undefined, maxConcurrentRequests: 2 }));
    const slow = [1, 2].map(() => request(`${sidecar.urls.ingress}/slow?ms=3000`));
    // Once both are in the works, the next request is shed (the loop's own requests pass until then).
    const shed = await waitFor(
      async () => {
        const res = await request(`${sidecar.urls.ingress}/hello`);
        const body = await res.body.text();
        return res.statusCode === 503
          ? { headers: res.headers, problem: JSON.parse(body) as ProblemDetails }
          : undefined;
      },
      { what: 'the third request shed' },
    );
    assert.equal(shed.headers['x-mesh-error'], 'overloaded');
    assert.equal(shed.headers['retry-after'], '1');
    assert.equal(shed.problem.code, 'MESH_OVERLOADED');
    for (const res of await Promise.all(slow)) {
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    const after = await request(`${sidecar.urls.ingress}/hello`);
    assert.equal(after.statusCode, 200);
    await after.body.dump();
    // Counted as rejected with reason "overloaded", whatever the route label.
    const metrics = await (await request(`${sidecar.urls.admin}/metrics`)).body.text();
    const rejected = metrics
      .split('\n')
      .filter((line) => line.startsWith('mesh_ingress_rejected_requests_total{'));
    const shedCount = rejected
      .filter((line) => line.includes('reason="overloaded"'))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
    assert.ok(shedCount >= 1, rejected.join('\n'));
  });

  it('answers a burst over the limit with 429 and RateLimit headers, and lets it pass later', async () => {
    const sidecar = await start(
      config({ rateLimits: [{ name: 'per-client', requestsPerSecond: 5, burst: 3 }] }),
    );
    const url = `${sidecar.urls.ingress}/echo/v1/pets/1`;
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 6; i += 1) {
      const res = await request(url);
      statuses.push(res.statusCode);
      if (res.statusCode === 429) refused ??= res;
      else await res.body.dump();
    }
    assert.ok(
      statuses.slice(0, 3).every((s) => s === 200),
      statuses.join(),
    );
    assert.ok(refused, `no 429 in ${statuses.join()}`);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.headers['ratelimit-limit'], '3');
    assert.equal(refused.headers['ratelimit-remaining'], '0');
    assert.equal(((await refused.body.json()) as ProblemDetails).code, 'MESH_RATE_LIMITED');
    await waitFor(
      async () => {
        const res = await request(url);
        await res.body.dump();
        return res.statusCode === 200;
      },
      { what: 'the bucket to refill', intervalMs: 100 },
    );
  });

  it('reloads OpenAPI rules on SIGHUP without dropping connections, and refuses listener changes', async () => {
    const initial = config();
    const sidecar = await start(initial);
    const client = new Client(sidecar.urls.ingress);
    cleanup.defer(() => client.close());
    let connects = 0;
    client.on('connect', () => (connects += 1));
    const status = async (path: string) => {
      const res = await client.request({ path, method: 'GET' });
      await res.body.dump();
      return res.statusCode;
    };
    assert.equal(await status('/echo/v1/unknown'), 200, 'not strict: forwarded');

    await sidecar.rewriteConfig({ ...initial, ingress: { ...initial.ingress, openapiStrict: true } });
    sidecar.proc.kill('SIGHUP');
    await waitFor(
      async () =>
        (await metricValue(sidecar.urls.admin, 'mesh_config_reloads_total', 'result="success"')) === 1,
      {
        what: 'the reload to succeed',
      },
    );
    assert.equal(await status('/echo/v1/unknown'), 404, 'strict now');
    assert.equal(connects, 1, 'the keep-alive connection survived the reload');

    await sidecar.rewriteConfig({
      ...initial,
      ingress: { ...initial.ingress, openapiStrict: true, port: 1 },
    });
    sidecar.proc.kill('SIGHUP');
    const rejected = await sidecar.waitForLog(
      (line) => line.msg === 'config reload rejected; keeping the running config',
    );
    assert.deepEqual(rejected.problems, ['/ingress/port: changing this needs a restart']);

    await sidecar.rewriteConfig({
      ...initial,
      ingress: { ...initial.ingress, openapi: '/nonexistent.yaml' },
    });
    sidecar.proc.kill('SIGHUP');
    await waitFor(
      async () =>
        (await metricValue(sidecar.urls.admin, 'mesh_config_reloads_total', 'result="failure"')) === 2,
      {
        what: 'the broken document to be refused',
      },
    );
    assert.equal(await status('/echo/v1/unknown'), 404, 'the last good rules stay');
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { pino } from 'pino';
import { request } from 'undici';
import { startDemoBackend, type DemoBackend } from '../../services/demo-backend/server.js';
import { validateConfig } from '../../services/runtime/config.js';
import type { ProblemDetails } from '../../services/runtime/errors.js';
import { createMetrics } from '../../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.js';
import { IngressComponent } from './ingress.js';

const examples = fileURLToPath(new URL('../../examples/openapi/', import.meta.url));
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'petstore';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function sign(
  key: SigningKey,
  claims: Record<string, unknown> = {},
  options: { exp?: string | number; aud?: string } = {},
) {
  return new SignJWT({ scope: 'pets:read', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setSubject('user-1')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(key.privateKey);
}

/** A real JWKS endpoint: serves whatever keys the test puts in `keys`, counting fetches. */
async function startJwks() {
  const state = { keys: [] as JWK[], fetches: 0 };
  const server = http.createServer((_req, res) => {
    state.fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('ingress JWT authentication', () => {
  let app: DemoBackend;
  let telemetry: Telemetry;
  let ingress: IngressComponent | undefined;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let keyA: SigningKey;

  async function startIngress(jwt: Record<string, unknown> = {}) {
    const config = validateConfig({
      ingress: {
        target: app.url,
        openapi: 'petstore.yaml',
        jwt: {
          jwksUrl: jwks.url,
          issuer: ISSUER,
          audience: AUDIENCE,
          jwksCooldownMs: 0,
          forwardClaims: { sub: 'x-user-id', scope: 'x-user-scope' },
          skipPaths: ['/hello'],
          ...jwt,
        },
      },
    });
    ingress = new IngressComponent({
      ...config.ingress,
      host: '127.0.0.1',
      port: 0,
      rules: config.ingress,
      baseDir: examples,
      metrics: createMetrics(),
      logger: pino({ level: 'silent' }),
      tracer: telemetry.tracer,
    });
    await ingress.start();
  }

  async function call(path: string, token?: string, method = 'GET', headers: Record<string, string> = {}) {
    const res = await request(`${ingress!.url}${path}`, {
      method: method as 'GET',
      headers: { 'x-tenant': 'acme', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
    const body = (await res.body.json()) as ProblemDetails & { headers?: Record<string, string> };
    return { status: res.statusCode, headers: res.headers, body };
  }

  beforeEach(async () => {
    app = await startDemoBackend();
    telemetry = startTelemetry({ serviceName: 'ingress-auth-test', inMemory: true, env: {} });
    jwks = await startJwks();
    keyA = await signingKey('a');
    jwks.state.keys = [keyA.jwk];
  });
  afterEach(async () => {
    await ingress?.stop();
    ingress = undefined;
    await jwks.close();
    await app.close();
    await telemetry.shutdown();
  });

  it("accepts a token from the JWKS endpoint and forwards the configured claims, not the caller's", async () => {
    await startIngress();
    const res = await call('/echo/v1/pets/1', await sign(keyA), 'GET', { 'x-user-id': 'spoofed' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.headers!['x-user-id'], 'user-1');
    assert.equal(res.body.headers!['x-user-scope'], 'pets:read');
    assert.equal(jwks.state.fetches, 1);
    await call('/echo/v1/pets/2', await sign(keyA));
    assert.equal(jwks.state.fetches, 1, 'keys are cached');
  });

  it('refuses missing, foreign, expired and wrong-audience tokens with 401 invalid_token', async () => {
    await startIngress();
    const other = await signingKey('a');
    const cases: [string, string | undefined, RegExp][] = [
      ['missing', undefined, /missing bearer token/],
      ['foreign key', await sign(other), /signature/],
      ['expired', await sign(keyA, {}, { exp: Math.floor(Date.now() / 1000) - 120 }), /expired/],
      ['audience', await sign(keyA, {}, { aud: 'someone-else' }), /"aud"/],
      ['garbage', 'not.a.token', /malformed/],
    ];
    for (const [name, token, detail] of cases) {
      const res = await call('/echo/v1/pets/1', token);
      assert.equal(res.status, 401, name);
      assert.equal(res.body.code, 'MESH_UNAUTHORIZED', name);
      assert.match(res.body.detail, detail, name);
      assert.match(
        String(res.headers['www-authenticate']),
        /^Bearer realm="mesh-sidecar", error="invalid_token"/,
        name,
      );
    }
  });

  it('accepts a token within the clock skew', async () => {
    await startIngress({ clockSkewSec: 60 });
    const res = await call(
      '/echo/v1/pets/1',
      await sign(keyA, {}, { exp: Math.floor(Date.now() / 1000) - 10 }),
    );
    assert.equal(res.status, 200);
  });

  it('answers 403 insufficient_scope when the OpenAPI security requirement is not met', async () => {
    await startIngress();
    const res = await call('/echo/v1/pets/1', await sign(keyA), 'DELETE');
    assert.equal(res.status, 403);
    assert.equal(res.body.code, 'MESH_FORBIDDEN');
    assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope", .*scope="pets:admin"/);
    const admin = await call(
      '/echo/v1/pets/1',
      await sign(keyA, { scope: 'pets:read pets:admin' }),
      'DELETE',
    );
    assert.equal(admin.status, 200);
  });

  it('takes scopes from config over the document, and skips auth where told to', async () => {
    await startIngress({ scopes: { 'GET /pets/{petId}': ['vip'] } });
    assert.equal((await call('/echo/v1/pets/1', await sign(keyA))).status, 403);
    assert.equal((await call('/echo/v1/pets/1', await sign(keyA, { scp: ['vip'] }))).status, 200);
    assert.equal((await call('/echo/v1/health')).status, 200, 'security: [] needs no token');
    assert.equal((await call('/hello')).status, 200, 'skipPaths need no token');
  });

  it('picks up keys rotated at the JWKS endpoint', async () => {
    await startIngress();
    assert.equal((await call('/echo/v1/pets/1', await sign(keyA))).status, 200);
    const keyB = await signingKey('b');
    jwks.state.keys = [keyB.jwk];
    assert.equal((await call('/echo/v1/pets/1', await sign(keyB))).status, 200);
    assert.equal(jwks.state.fetches, 2, 'an unknown kid triggers one refetch');
  });

  it('verifies against a local keys file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mesh-keys-'));
    try {
      await writeFile(join(dir, 'keys.json'), JSON.stringify({ keys: [keyA.jwk] }));
      await startIngress({ jwksUrl: undefined, keysFile: join(dir, 'keys.json') });
      assert.equal((await call('/echo/v1/pets/1', await sign(keyA))).status, 200);
      assert.equal(jwks.state.fetches, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Security defaults: loopback-only bridge and egress, loopback-only admin writes, secrets kept out
 * of /config and the logs, TLS 1.2 at least on listeners and to upstreams, and JWT algorithm
 * attacks (`alg: none`, HMAC signed with the RSA public key) refused by ingress auth.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import { request } from 'undici';
import { AdminComponent } from '../../services/sidecar/admin.js';
import { validateConfig } from '../../services/runtime/config.js';
import { createMetrics } from '../../services/runtime/metrics.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { CleanupStack } from '../helpers/wait.js';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A self-signed certificate for 127.0.0.1, made by the openssl CLI for this suite only. */
function selfSigned(dir: string): { cert: string; key: string } {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'tls.key',
      '-out',
      'tls.crt',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '2',
    ],
    { cwd: dir, stdio: 'pipe' },
  );
  return { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

/** Resolves with the negotiated protocol, or the handshake error's message. */
function handshake(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.once('secureConnect', () => {
      resolve(socket.getProtocol() ?? 'unknown');
      socket.destroy();
    });
    socket.once('error', (err: Error) => resolve(`error: ${err.message}`));
  });
}

// Old protocols are compiled out of some OpenSSL builds' defaults: SECLEVEL=0 lets the client offer them.
const OLD_TLS: ConnectionOptions = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.1',
  ciphers: 'DEFAULT:@SECLEVEL=0',
};

describe('security defaults', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-security-'));
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
  });

  async function start(config: unknown): Promise<SidecarProcess> {
    const sidecar = await startSidecarProcess(config, { startTimeoutMs: 30_000 });
    cleanup.defer(() => sidecar.cleanup());
    return sidecar;
  }

  it('binds the bridge and egress to loopback unless told otherwise', async () => {
    const defaults = validateConfig({});
    assert.equal(defaults.bridge.host, '127.0.0.1');
    assert.equal(defaults.egress.host, '127.0.0.1');
    // The real process, no host given (port 0 so tests never collide); Kafka need not be reachable.
    const sidecar = await start({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: { enabled: false },
      egress: { port: 0, services: { orders: { endpoints: ['http://127.0.0.1:9'] } } },
      bridge: { enabled: true, port: 0 },
      kafka: { bootstrap: ['127.0.0.1:9'] },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
    });
    assert.match(sidecar.urls.bridge, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(sidecar.urls.egress, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('serves admin writes (/quitquitquit) to loopback callers only', async () => {
    let shutdowns = 0;
    const admin = new AdminComponent({
      host: '127.0.0.1',
      port: 0,
      metrics: createMetrics(),
      logger: pino({ level: 'silent' }),
      readinessChecks: () => [],
      effectiveConfig: () => ({}),
      requestShutdown: () => (shutdowns += 1),
    });
    await admin.start();
    cleanup.defer(() => admin.stop());
    // Every connection is made over loopback; this one is made to look like it came from elsewhere
    // (203.0.113.7, TEST-NET-3), as a pod-network caller would: nothing leaves the machine.
    let remote: string | undefined;
    const server = (admin as unknown as { listener: { server: Server } }).listener.server;
    server.prependListener('connection', (socket: Socket) => {
      if (remote) Object.defineProperty(socket, 'remoteAddress', { value: remote });
    });
    const quit = async () => {
      const res = await request(`${admin.url}/quitquitquit`, { method: 'POST', reset: true });
      return { status: res.statusCode, body: (await res.body.json()) as { code?: string } };
    };

    remote = '203.0.113.7';
    const refused = await quit();
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'MESH_FORBIDDEN');
    remote = '::ffff:10.1.2.3';
    assert.equal((await quit()).status, 403);
    assert.equal(shutdowns, 0, 'no shutdown from a remote caller');

    remote = undefined;
    const readOnly = await request(`${admin.url}/healthz`, { reset: true });
    assert.equal(readOnly.statusCode, 200, 'read endpoints answer everyone');
    await readOnly.body.dump();
    const viaGet = await request(`${admin.url}/quitquitquit`, { reset: true });
    assert.equal(viaGet.statusCode, 404, 'GET never shuts down');
    await viaGet.body.dump();
    assert.equal((await quit()).status, 200);
    assert.equal(shutdowns, 1);
  });

  it('keeps secrets out of /config and out of the logs, even at debug level', async () => {
    const secrets = {
      oauth: 'oauth-client-secret-7f3a9',
      sasl: 'sasl-password-91c2e',
      apiKey: 'api-key-55d0b1',
    };
    const sidecar = await start({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: 'http://127.0.0.1:9',
        routes: [{ prefix: '/', apiKey: { header: 'x-api-key', query: 'api_key', keys: [secrets.apiKey] } }],
      },
      egress: {
        port: 0,
        services: {
          orders: {
            endpoints: ['http://127.0.0.1:9'],
            oauth2: {
              tokenUrl: 'http://127.0.0.1:9/token',
              clientId: 'sidecar',
              clientSecret: secrets.oauth,
            },
          },
        },
      },
      bridge: { enabled: true, port: 0 },
      kafka: {
        bootstrap: ['127.0.0.1:9'],
        sasl: { mechanism: 'scram-sha-512', username: 'mesh', password: secrets.sasl },
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
      log: { level: 'debug' },
    });
    const config = await (await request(`${sidecar.urls.admin}/config`)).body.text();
    for (const secret of Object.values(secrets))
      assert.ok(!config.includes(secret), `/config shows ${secret}`);
    assert.match(config, /"clientSecret":"[^"]*"/);

    // Use each secret: a token fetch that fails, requests carrying the API key (header and query).
    const viaEgress = await request(`${sidecar.urls.egress}/x`, { headers: { host: 'orders' } });
    await viaEgress.body.dump();
    for (const init of [{ headers: { 'x-api-key': secrets.apiKey } }, {}]) {
      const path = Object.keys(init).length ? '/a' : `/a?api_key=${secrets.apiKey}`;
      const res = await request(`${sidecar.urls.ingress}${path}`, init);
      await res.body.dump();
    }
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
    const logs = sidecar.logs.map((line) => JSON.stringify(line)).join('\n');
    assert.ok(sidecar.logs.length > 5, 'debug logs were written');
    for (const [name, secret] of Object.entries(secrets))
      assert.ok(!logs.includes(secret), `the logs show the ${name} secret`);
  });

  it('refuses TLS below 1.2 on its listeners and to its upstreams', async () => {
    const { cert, key } = selfSigned(dir);
    const sidecar = await start({
      admin: { host: '127.0.0.1', port: 0, tls: { cert, key } },
      ingress: { host: '127.0.0.1', port: 0, target: 'http://127.0.0.1:9', tls: { cert, key } },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
    });
    for (const name of ['admin', 'ingress']) {
      const port = Number(new URL(sidecar.urls[name]).port);
      assert.match(await handshake(port, {}), /^TLSv1\.[23]$/, `${name} speaks TLS 1.2+`);
      assert.match(await handshake(port, OLD_TLS), /^error: /, `${name} refuses TLS 1.0/1.1`);
    }

    // An upstream that offers nothing newer than TLS 1.1: egress must not go down to it.
    const upstream = createHttpsServer(
      {
        cert: readFileSync(cert),
        key: readFileSync(key),
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT:@SECLEVEL=0',
      },
      (_req, res) => res.end('old'),
    );
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise((resolve) => upstream.close(resolve)));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    assert.equal(await handshake(upstreamPort, OLD_TLS), 'TLSv1.1', 'the old upstream does speak TLS 1.1');
    writeFileSync(join(dir, 'ca.crt'), readFileSync(cert));
    const egress = await start({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: { enabled: false },
      egress: {
        port: 0,
        services: {
          old: {
            endpoints: [`https://127.0.0.1:${upstreamPort}`],
            tls: { ca: join(dir, 'ca.crt') },
            retry: { attempts: 1 },
          },
        },
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
    });
    const res = await request(`${egress.urls.egress}/`, { headers: { host: 'old' } });
    const text = await res.body.text();
    assert.equal(res.statusCode, 502, text);
    assert.ok(!text.includes('old'.repeat(2)));
  });

  it('refuses JWTs with alg none and HMAC tokens signed with the RSA public key', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const keysFile = join(dir, 'jwks.json');
    writeFileSync(keysFile, JSON.stringify({ keys: [jwk] }));
    const app = createHttpServer((_req, res) => res.end('{"ok":true}'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise((resolve) => app.close(resolve)));
    const sidecar = await start({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: {
        host: '127.0.0.1',
        port: 0,
        target: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
        jwt: { keysFile, issuer: 'https://issuer.test', audience: 'svc' },
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
    });
    const claims = {
      iss: 'https://issuer.test',
      aud: 'svc',
      sub: 'mallory',
      exp: Math.floor(Date.now() / 1000) + 300,
    };
    const valid = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(claims.iss)
      .setAudience(claims.aud)
      .setExpirationTime('5m')
      .sign(privateKey);
    const none = `${b64url({ alg: 'none', typ: 'JWT', kid: 'k1' })}.${b64url(claims)}.`;
    // Alg confusion: HS256 with the verifier's own public key (PEM and JWK forms) as the HMAC secret.
    const pem = await exportSPKI(publicKey);
    const hmacWith = (secret: string | Buffer, alg = 'HS256') => {
      const head = `${b64url({ alg, typ: 'JWT', kid: 'k1' })}.${b64url(claims)}`;
      return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
    };
    const status = async (token: string) => {
      const res = await request(`${sidecar.urls.ingress}/x`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await res.body.dump();
      return { status: res.statusCode, challenge: String(res.headers['www-authenticate']) };
    };
    assert.equal((await status(valid)).status, 200, 'a properly signed token passes');
    for (const [name, token] of [
      ['alg none', none],
      ['alg none, signature kept', `${none}${valid.split('.')[2]}`],
      ['HS256 with the PEM public key', hmacWith(pem)],
      ['HS256 with the JWK n', hmacWith(String(jwk.n))],
      ['HS256 with the JWKS file', hmacWith(readFileSync(keysFile))],
    ] as const) {
      const answer = await status(token);
      assert.equal(answer.status, 401, name);
      assert.match(answer.challenge, /error="invalid_token"/, name);
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OAuthBearerTokens, readSecretFile, saslOptions, secretFiles, tlsOptions } from './auth.js';

describe('kafka auth options', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kafka-auth-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('reads a password file again for every connection, without its trailing newline', async () => {
    const file = join(dir, 'password');
    await writeFile(file, 'first\n');
    const sasl = saslOptions({ mechanism: 'scram-sha-512', username: 'app', passwordFile: file }) as {
      mechanism: string;
      username: string;
      password: string;
    };
    assert.equal(sasl.mechanism, 'scram-sha-512');
    assert.equal(sasl.password, 'first');
    await writeFile(file, 'rotated');
    assert.equal(sasl.password, 'rotated', 'a rotated Secret is used by the next connection');
    // kafkajs caches its authenticator on the object: it must stay extensible.
    assert.ok(Object.isExtensible(sasl));
  });

  it('names the key and the path of a missing secret file, never its content', () => {
    assert.throws(
      () => readSecretFile('kafka.sasl.passwordFile', join(dir, 'nope')),
      /cannot read kafka.sasl.passwordFile .*nope: no such file/,
    );
  });

  it('builds tls.connect options whose PEM files are copied (read) by Object.assign on each connect', async () => {
    await writeFile(join(dir, 'ca.crt'), 'CA-1');
    const options = tlsOptions({
      caFile: join(dir, 'ca.crt'),
      key: 'KEY',
      serverName: 'kafka',
      rejectUnauthorized: true,
    });
    assert.deepEqual(Object.assign({}, options), {
      rejectUnauthorized: true,
      servername: 'kafka',
      ca: 'CA-1',
      key: 'KEY',
    });
    await writeFile(join(dir, 'ca.crt'), 'CA-2');
    assert.equal(Object.assign({}, options).ca, 'CA-2');
  });

  it('lists every configured secret file', () => {
    assert.deepEqual(
      secretFiles({
        tls: { caFile: '/ca', keyFile: '/key', certFile: '/cert', rejectUnauthorized: true },
        sasl: { mechanism: 'plain', username: 'u', passwordFile: '/pw' },
      }).map((f) => f.key),
      ['kafka.tls.caFile', 'kafka.tls.certFile', 'kafka.tls.keyFile', 'kafka.sasl.passwordFile'],
    );
  });

  describe('OAuthBearerTokens', () => {
    let server: Server;
    let url: string;
    const requests: { authorization?: string; body: string }[] = [];
    let expiresIn = 60;

    before(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          requests.push({ authorization: req.headers.authorization, body });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ access_token: `token-${requests.length}`, expires_in: expiresIn }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    beforeEach(() => {
      requests.length = 0;
      expiresIn = 60;
    });

    it('fetches once for concurrent connections and renews refreshBeforeMs before expiry', async () => {
      let now = 1_000_000;
      const secretFile = join(dir, 'client-secret');
      await writeFile(secretFile, 's3cret\n');
      const tokens = new OAuthBearerTokens(
        {
          tokenUrl: url,
          clientId: 'sidecar',
          clientSecretFile: secretFile,
          scope: 'kafka',
          authMethod: 'client_secret_basic',
          refreshBeforeMs: 10_000,
          extensions: { logicalCluster: 'lkc-1' },
        },
        () => now,
      );
      const [a, b] = await Promise.all([tokens.get(), tokens.get()]);
      assert.deepEqual(a, { value: 'token-1', extensions: { logicalCluster: 'lkc-1' } });
      assert.equal(b.value, 'token-1');
      assert.equal(requests.length, 1, 'one token request for both connections');
      assert.equal(requests[0].authorization, `Basic ${Buffer.from('sidecar:s3cret').toString('base64')}`);
      assert.match(requests[0].body, /grant_type=client_credentials/);
      assert.match(requests[0].body, /scope=kafka/);

      now += 49_000; // 11 s left of 60: still good
      assert.equal((await tokens.get()).value, 'token-1');
      now += 2_000; // 9 s left: renewed
      assert.equal((await tokens.get()).value, 'token-2');
      assert.equal(tokens.fetches, 2);
    });

    it('sends the credentials in the body with client_secret_post and reports a refused request', async () => {
      const tokens = new OAuthBearerTokens({
        tokenUrl: url,
        clientId: 'sidecar',
        clientSecret: 'inline',
        authMethod: 'client_secret_post',
        refreshBeforeMs: 0,
      });
      await tokens.get();
      assert.equal(requests[0].authorization, undefined);
      assert.match(requests[0].body, /client_id=sidecar&client_secret=inline/);

      const refused = new OAuthBearerTokens({
        tokenUrl: 'http://127.0.0.1:9/token',
        clientId: 'sidecar',
        clientSecret: 'inline-secret',
        authMethod: 'client_secret_basic',
        refreshBeforeMs: 0,
      });
      await assert.rejects(refused.get(), (err: Error) => {
        assert.match(err.message, /OAUTHBEARER token endpoint http:\/\/127.0.0.1:9\/token failed/);
        assert.ok(!err.message.includes('inline-secret'));
        return true;
      });
    });
  });
});

/**
 * Kafka over SASL_SSL (issue 11): the real sidecar process against a broker of its own with a
 * `SASL_SSL` listener (SCRAM users made by `kafka-storage format --add-scram`, a test CA and broker
 * certificate made with openssl). Produce through the bridge and push-consume with SCRAM-SHA-512;
 * a wrong password stops the start-up (exit 1) or keeps the sidecar not ready, naming mechanism and
 * broker and never the secret; OAUTHBEARER tokens come from a client-credentials endpoint and are
 * renewed. The broker's PLAINTEXT side door is for the test's own checks.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { generateTestCertificates, type TestCertificates } from '../scripts/kafka/certs.js';
import { startSecureKafka, type SecureKafka } from '../scripts/kafka/cluster.js';
import { JSON_TYPE } from './helpers/bridge-client.js';
import { startEventSink } from './helpers/event-sink.js';
import { KafkaTestContext, uniqueName } from './helpers/kafka.js';
import { runSidecarUntilExit } from './helpers/sidecar-exit.js';
import { startSidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

interface HttpAnswer {
  status: number;
  text: string;
}

async function get(url: string): Promise<HttpAnswer> {
  const res = await request(url);
  return { status: res.statusCode, text: await res.body.text() };
}

describe('Kafka over SASL_SSL: SCRAM and OAUTHBEARER (sidecar process, own broker)', function () {
  this.timeout(120_000);
  const password = `app-secret-${randomUUID()}`;
  const cleanup = new CleanupStack();
  let dir: string;
  let certs: TestCertificates;
  let broker: SecureKafka | undefined;
  let kafka: KafkaTestContext;

  before(async function () {
    this.timeout(120_000);
    dir = await mkdtemp(join(tmpdir(), 'mesh-kafka-security-'));
    certs = await generateTestCertificates(dir);
    broker = await startSecureKafka({ certs, users: [{ username: 'app', password }] });
    kafka = KafkaTestContext.forBrokers([broker.plaintextBootstrap]);
  });

  afterEach(() => cleanup.run());

  after(async () => {
    await kafka?.close().catch(() => undefined);
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A sidecar with the bridge on and SASL_SSL to the test broker; `sasl` replaces the credentials. */
  function sidecarConfig(sasl: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    return {
      admin: { port: 0, host: '127.0.0.1' },
      ingress: { enabled: false },
      egress: { enabled: false },
      bridge: { enabled: true, port: 0 },
      kafka: {
        bootstrap: [broker!.bootstrap],
        tls: { caFile: certs.caFile },
        sasl: { mechanism: 'scram-sha-512', username: 'app', ...sasl },
        healthCheckIntervalMs: 1_000,
        ...extra,
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
      log: { level: 'info' },
    };
  }

  it('produces through the bridge and push-consumes over SASL_SSL with SCRAM-SHA-512', async () => {
    const topic = await kafka.createTopic(uniqueName('secure'), 2);
    const sink = await startEventSink();
    cleanup.defer(() => sink.close());
    const config = {
      ...sidecarConfig({ password: '${KAFKA_PASSWORD}' }),
      ingress: { port: 0, host: '127.0.0.1', target: sink.url },
      subscriptions: [
        {
          name: 'secure',
          topics: [topic],
          group: uniqueName('secure-group'),
          path: '/events',
          autoOffsetReset: 'earliest',
        },
      ],
    };
    const sidecar = await startSidecarProcess(config, {
      env: { KAFKA_PASSWORD: password },
      startTimeoutMs: 40_000,
    });
    cleanup.defer(() => sidecar.cleanup());
    const ready = await waitFor(
      async () => {
        const answer = await get(`${sidecar.urls.admin}/readyz`);
        return answer.status === 200 ? answer : false;
      },
      { timeoutMs: 40_000, intervalMs: 200, what: 'the sidecar to be ready over SASL_SSL' },
    );
    const checks = (JSON.parse(ready.text) as { checks: { name: string; ready: boolean }[] }).checks;
    assert.ok(
      checks.some((check) => check.name === 'kafka' && check.ready),
      `a kafka readiness check: ${ready.text}`,
    );

    const values = Array.from({ length: 20 }, (_, i) => `secure-${i}`);
    const produced = await request(`${sidecar.urls.bridge}/topics/${topic}`, {
      method: 'POST',
      headers: { 'content-type': JSON_TYPE },
      body: JSON.stringify({ records: values.map((value, i) => ({ key: `k${i % 4}`, value })) }),
    });
    const answer = (await produced.body.json()) as { offsets: { offset?: number; error_code?: number }[] };
    assert.equal(produced.statusCode, 200, JSON.stringify(answer));
    assert.equal(answer.offsets.filter((entry) => typeof entry.offset === 'number').length, values.length);

    await waitFor(() => values.every((value) => sink.byValue.has(value)), {
      timeoutMs: 30_000,
      what: `push deliveries of ${values.length} records (have ${sink.byValue.size})`,
    });
    const stored = await kafka.readTopic(topic, values.length);
    assert.deepEqual(
      stored.map((record) => JSON.parse(String(record.value)) as string).sort(),
      [...values].sort(),
    );
    assert.equal(await kafka.recordCount(topic), values.length);

    const shown = await get(`${sidecar.urls.admin}/config`);
    const effective = JSON.parse(shown.text) as { kafka: { sasl: { password: string } } };
    assert.equal(effective.kafka.sasl.password, '***', '/config redacts the password');
    assert.ok(!shown.text.includes(password), '/config never shows the password');
    assert.ok(!JSON.stringify(sidecar.logs).includes(password), 'no log line carries the password');
  });

  it('exits 1 on a wrong password, naming the mechanism and the broker but not the secret', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const result = await runSidecarUntilExit(sidecarConfig({ password: wrong }), { timeoutMs: 45_000 });
    assert.equal(result.timedOut, false, `the sidecar kept running: ${result.stdout.slice(-2000)}`);
    assert.equal(result.code, 1, result.stdout.slice(-2000) + result.stderr);
    const failure = result.logs.find((line) => line.msg === 'start-up failed');
    assert.ok(failure, `a "start-up failed" line: ${result.stdout.slice(-2000)}`);
    const message = String((failure.err as { message?: unknown } | undefined)?.message);
    assert.match(message, /SASL SCRAM-SHA-512 authentication as "app" refused by broker/);
    assert.ok(message.includes(broker!.bootstrap), `names the broker ${broker!.bootstrap}: ${message}`);
    assert.ok(!result.stdout.includes(wrong) && !result.stderr.includes(wrong), 'the secret is in no output');
  });

  it('exits 1 when the broker certificate is not trusted, naming the broker', async () => {
    const base = sidecarConfig({ password });
    // No caFile: the system CAs do not know the test CA.
    const config = { ...base, kafka: { ...base.kafka, tls: {} } };
    const result = await runSidecarUntilExit(config, { timeoutMs: 45_000 });
    assert.equal(result.code, 1, result.stdout.slice(-2000) + result.stderr);
    const failure = result.logs.find((line) => line.msg === 'start-up failed');
    const message = String((failure?.err as { message?: unknown } | undefined)?.message);
    assert.match(message, /Kafka TLS handshake with broker 127\.0\.0\.1:\d+ failed: .*certificate/);
    assert.ok(!result.stdout.includes(password), 'the password is in no output');
  });

  it('with onStartupFailure: not-ready stays up, /readyz names the failure, and a fixed password file heals it', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const passwordFile = join(dir, `password-${randomUUID()}`);
    await writeFile(passwordFile, `${wrong}\n`);
    const sidecar = await startSidecarProcess(
      sidecarConfig({ passwordFile }, { onStartupFailure: 'not-ready' }),
      { startTimeoutMs: 40_000 },
    );
    cleanup.defer(() => sidecar.cleanup());

    const notReady = await get(`${sidecar.urls.admin}/readyz`);
    assert.equal(notReady.status, 503);
    assert.match(
      notReady.text,
      /kafka: Kafka SASL SCRAM-SHA-512 authentication as \\"app\\" refused by broker/,
    );
    assert.ok(notReady.text.includes(broker!.bootstrap), notReady.text);
    assert.equal(sidecar.proc.exitCode, null, 'still running');

    // The mounted Secret is fixed: the next connection reads the file again.
    await writeFile(passwordFile, `${password}\n`);
    let last: HttpAnswer | undefined;
    await waitFor(async () => (last = await get(`${sidecar.urls.admin}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'readiness once the password file holds the right password',
    }).catch((err: Error) => {
      throw new Error(`${err.message}; /readyz: ${last?.text}`);
    });
    const topic = await kafka.createTopic(uniqueName('healed'), 1);
    const produced = await request(`${sidecar.urls.bridge}/topics/${topic}`, {
      method: 'POST',
      headers: { 'content-type': JSON_TYPE },
      body: JSON.stringify({ records: [{ value: 'after the fix' }] }),
    });
    assert.equal(produced.statusCode, 200, await produced.body.text());
    const logs = JSON.stringify(sidecar.logs);
    assert.ok(!logs.includes(wrong) && !logs.includes(password), 'neither password is in the logs');
  });
  it('authenticates with OAUTHBEARER tokens from a client-credentials endpoint and renews them before expiry', async () => {
    const clientSecret = `client-secret-${randomUUID()}`;
    const issued: { authorization: string | undefined; at: number }[] = [];
    const lifetimeS = 20;
    // Kafka's default OAUTHBEARER validator takes unsecured JWTs: alg none, sub and exp claims.
    const tokenServer = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        issued.push({ authorization: req.headers.authorization, at: Date.now() });
        const now = Math.floor(Date.now() / 1000);
        const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
        const token = `${part({ alg: 'none' })}.${part({ sub: 'app', iat: now, exp: now + lifetimeS })}.`;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: lifetimeS }));
      });
    });
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise<void>((resolve) => tokenServer.close(() => resolve())));
    const tokenUrl = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
    const base = sidecarConfig({});
    const config = {
      ...base,
      kafka: {
        ...base.kafka,
        sasl: {
          mechanism: 'oauthbearer',
          oauthbearer: { tokenUrl, clientId: 'sidecar', clientSecret, refreshBeforeMs: 15_000 },
        },
      },
    };
    const sidecar = await startSidecarProcess(config, { startTimeoutMs: 40_000 });
    cleanup.defer(() => sidecar.cleanup());
    await waitFor(async () => (await get(`${sidecar.urls.admin}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'readiness with OAUTHBEARER',
    });
    assert.equal(
      issued[0]?.authorization,
      `Basic ${Buffer.from(`sidecar:${clientSecret}`).toString('base64')}`,
      'client credentials sent with HTTP Basic',
    );
    const topic = await kafka.createTopic(uniqueName('oauth'), 1);
    const produceOne = async (value: string) => {
      const res = await request(`${sidecar.urls.bridge}/topics/${topic}`, {
        method: 'POST',
        headers: { 'content-type': JSON_TYPE },
        body: JSON.stringify({ records: [{ value }] }),
      });
      return { status: res.statusCode, text: await res.body.text() };
    };
    const first = await produceOne('first');
    assert.equal(first.status, 200, first.text);
    // A token lives 20 s and is renewed half-way (refreshBeforeMs 15 s is more than half its life):
    // the connections opened afterwards (the health check opens one every second) authenticate with
    // the new token, and the broker ends the sessions of the old one at its expiry; producing still
    // works once every connection of the first token has had to go.
    await waitFor(() => issued.length >= 2, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `renewed tokens (${issued.length} issued)`,
    });
    const firstExpires = issued[0].at + lifetimeS * 1000;
    await waitFor(() => Date.now() > firstExpires + 500, {
      timeoutMs: lifetimeS * 1000 + 5_000,
      intervalMs: 250,
      what: 'the first token to expire',
    });
    const second = await produceOne('second');
    assert.equal(second.status, 200, second.text);
    const gaps = issued.slice(1).map((token, i) => token.at - issued[i].at);
    assert.ok(
      gaps.every((gap) => gap >= 1_000),
      `tokens are cached, not fetched per connection: ${JSON.stringify(gaps)}`,
    );
    const shown = await get(`${sidecar.urls.admin}/config`);
    assert.ok(!shown.text.includes(clientSecret), '/config redacts the client secret');
    assert.ok(!JSON.stringify(sidecar.logs).includes(clientSecret), 'no log line carries the client secret');
  });
});

/**
 * The light-mesh Kafka sidecar's REST API on the bridge, against the real broker: the producer API
 * (ids as headers, read back with an independent client), its audit records, the health aliases,
 * the active consumer's path names and the active dead-letter endpoints.
 */
import assert from 'node:assert/strict';
import { trace } from '@opentelemetry/api';
import { pino } from 'pino';
import { request } from 'undici';
import { BridgeComponent } from '../bridge/bridge.js';
import { validateConfig } from '../services/runtime/config.js';
import { createMetrics } from '../services/runtime/metrics.js';
import { BridgeClient, JSON_TYPE, V2 } from './helpers/bridge-client.js';
import { startTestBridge } from './helpers/bridge.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';

interface AuditJson {
  id: string;
  key: unknown;
  auditType: string;
  serviceId: string;
  topic: string;
  correlationId: string | null;
  traceabilityId: string | null;
  auditStatus: string;
  offset: number | null;
}

interface DeadLetterJson {
  key: unknown;
  value: unknown;
  headers: Record<string, string>;
}

const headerMap = (headers: Record<string, unknown> | undefined) =>
  Object.fromEntries(
    Object.entries(headers ?? {}).map(([name, value]) => [
      name,
      Buffer.from(value as Buffer).toString('utf8'),
    ]),
  );

describe('light-mesh bridge API', function () {
  this.timeout(120_000);
  const suite = kafkaSuite();

  it('produces with correlation and traceability ids as headers, answering after the acknowledgement', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('lm-produce'), 2);
    const { url } = await startTestBridge(suite.cleanup, {
      bridge: { lightmesh: { injectCallerId: true, serviceId: 'com.example.svc-1.0.0' } },
    });
    const client = new BridgeClient(url);
    const answer = await client.call<{ offsets: Record<string, unknown>[] }>(`/producers/${topic}`, {
      contentType: 'application/json',
      headers: { authorization: 'Bearer do-not-leak' },
      body: {
        keyFormat: 'STRING',
        valueFormat: 'JSON',
        records: [
          {
            key: 'k1',
            value: { n: 1 },
            correlationId: 'corr-1',
            traceabilityId: 'trace-1',
            headers: { app: 'a' },
          },
          { key: 'k2', value: { n: 2 }, traceabilityId: 'trace-2' },
        ],
      },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.offsets.length, 2);
    for (const entry of answer.body.offsets) {
      assert.equal(typeof entry.partition, 'number');
      assert.equal(typeof entry.offset, 'number');
      assert.equal(entry.errorCode, null);
      assert.equal(entry.error, null);
    }

    const read = await suite.kafka.readTopic(topic, 2);
    const byKey = new Map(read.map((record) => [String(record.key), record]));
    const first = headerMap(byKey.get('k1')!.headers);
    assert.equal(first['X-Correlation-Id'], 'corr-1');
    assert.equal(first['X-Traceability-Id'], 'trace-1');
    assert.equal(first.caller_id, 'com.example.svc-1.0.0');
    assert.equal(first.app, 'a');
    assert.equal(first.Authorization ?? first.authorization, undefined);
    assert.deepEqual(JSON.parse(String(byKey.get('k1')!.value)), { n: 1 });
    const second = headerMap(byKey.get('k2')!.headers);
    assert.match(second['X-Correlation-Id'], /^[0-9a-f-]{36}$/);
    assert.equal(second['X-Traceability-Id'], 'trace-2');
    // The answer names where each record was written.
    const k1 = answer.body.offsets[0];
    assert.equal(byKey.get('k1')!.partition, k1.partition);
    assert.equal(Number(byKey.get('k1')!.offset), k1.offset);
    assert.equal(await suite.kafka.recordCount(topic), 2);
  });

  it('copies Authorization only with the opt-in, and refuses registry formats with 422', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('lm-auth'));
    const { url } = await startTestBridge(suite.cleanup, {
      bridge: { lightmesh: { copyAuthorizationHeader: true } },
    });
    const client = new BridgeClient(url);
    const avro = await client.call<{ error_code: number; message: string }>(`/producers/${topic}`, {
      contentType: 'application/json',
      body: { keyFormat: 'STRING', valueFormat: 'AVRO', records: [{ key: 'k', value: { a: 1 } }] },
    });
    assert.equal(avro.status, 422);
    assert.match(avro.body.message, /valueFormat AVRO is not supported: it needs a schema registry/);
    const ok = await client.call(`/producers/${topic}`, {
      contentType: 'application/json',
      headers: { authorization: 'Bearer opted-in' },
      body: { valueFormat: 'STRING', records: [{ value: 'v' }] },
    });
    assert.equal(ok.status, 200);
    const [record] = await suite.kafka.readTopic(topic, 1);
    assert.equal(headerMap(record.headers).Authorization, 'Bearer opted-in');
    assert.equal(await suite.kafka.recordCount(topic), 1);
  });

  it('writes one PRODUCER audit record per produced record to the audit topic, keyed by correlation id', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('lm-audited'));
    const auditTopic = await suite.kafka.createTopic(uniqueName('lm-audit'));
    const { url } = await startTestBridge(suite.cleanup, {
      bridge: {
        lightmesh: { serviceId: 'svc-a', audit: { enabled: true, target: 'topic', topic: auditTopic } },
      },
    });
    const answer = await new BridgeClient(url).call<{ offsets: { offset: number }[] }>(
      `/producers/${topic}`,
      {
        contentType: 'application/json',
        body: {
          records: [
            { key: 'a', value: 1, correlationId: 'ca', traceabilityId: 'ta' },
            { key: 'b', value: 2, correlationId: 'cb' },
          ],
        },
      },
    );
    assert.equal(answer.status, 200);
    const audits = await suite.kafka.readTopic(auditTopic, 2);
    const parsed = audits.map((record) => ({
      ...(JSON.parse(String(record.value)) as AuditJson),
      kafkaKey: String(record.key),
    }));
    parsed.sort((x, y) => x.kafkaKey.localeCompare(y.kafkaKey));
    assert.deepEqual(
      parsed.map(
        ({
          kafkaKey,
          key,
          auditType,
          serviceId,
          topic: t,
          correlationId,
          traceabilityId,
          auditStatus,
          offset,
        }) => ({
          kafkaKey,
          key,
          auditType,
          serviceId,
          topic: t,
          correlationId,
          traceabilityId,
          auditStatus,
          offset,
        }),
      ),
      [
        {
          kafkaKey: 'ca',
          key: 'a',
          auditType: 'PRODUCER',
          serviceId: 'svc-a',
          topic,
          correlationId: 'ca',
          traceabilityId: 'ta',
          auditStatus: 'SUCCESS',
          offset: answer.body.offsets[0].offset,
        },
        {
          kafkaKey: 'cb',
          key: 'b',
          auditType: 'PRODUCER',
          serviceId: 'svc-a',
          topic,
          correlationId: 'cb',
          traceabilityId: null,
          auditStatus: 'SUCCESS',
          offset: answer.body.offsets[1].offset,
        },
      ],
    );
    for (const audit of parsed) assert.match(audit.id, /^[0-9a-f-]{36}$/);
    assert.equal(await suite.kafka.recordCount(auditTopic), 2);
  });

  it('answers the health aliases with OK', async () => {
    const { url } = await startTestBridge(suite.cleanup);
    for (const path of ['/health/liveness', '/health/readiness']) {
      const res = await request(`${url}${path}`);
      assert.equal(res.statusCode, 200, path);
      assert.equal(await res.body.text(), 'OK');
    }
  });

  it('answers readiness ERROR (503) while the producer cannot reach Kafka, liveness still OK', async () => {
    const config = validateConfig({
      kafka: { bootstrap: ['127.0.0.1:1'] },
      bridge: { enabled: true, port: 0 },
    });
    const bridge = new BridgeComponent({
      bridge: config.bridge,
      kafka: config.kafka,
      baseDir: process.cwd(),
      version: '0.0.0-test',
      metrics: createMetrics(),
      logger: pino({ level: 'silent' }),
      tracer: trace.getTracer('lightmesh-test'),
    });
    await bridge.start();
    suite.cleanup.defer(() => bridge.stop());
    const readiness = await request(`${bridge.url}/health/readiness`);
    assert.equal(readiness.statusCode, 503);
    assert.equal(await readiness.body.text(), 'ERROR');
    const liveness = await request(`${bridge.url}/health/liveness`);
    assert.equal(liveness.statusCode, 200);
    assert.equal(await liveness.body.text(), 'OK');
  });

  it('serves the active consumer path names as aliases, and PUT offsets answers the committed offsets', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('lm-active'));
    const group = uniqueName('lm-active-group');
    const { url } = await startTestBridge(suite.cleanup);
    const client = new BridgeClient(url);
    const produced = await client.call(`/producers/${topic}`, {
      contentType: 'application/json',
      body: { records: [{ value: { n: 1 } }, { value: { n: 2 } }, { value: { n: 3 } }] },
    });
    assert.equal(produced.status, 200);
    const created = await client.call<{ base_uri: string }>(`/consumers/${group}`, {
      body: { name: 'c1', format: 'json', 'auto.offset.reset': 'earliest', 'enable.auto.commit': false },
    });
    assert.equal(created.status, 200);
    const base = `/consumers/${group}/instances/c1`;
    suite.cleanup.defer(() => client.call(base, { method: 'DELETE' }));
    assert.equal((await client.call(`${base}/subscriptions`, { body: { topics: [topic] } })).status, 204);
    const subscription = await client.call<{ topics: string[] }>(`${base}/subscriptions`);
    assert.equal(subscription.status, 200);
    assert.deepEqual(subscription.body.topics, [topic]);
    const records = await client.pollUntil(base, JSON_TYPE, 3);
    assert.equal(records.length, 3);

    const committed = await client.call<{ offsets: { topic: string; partition: number; offset: number }[] }>(
      `${base}/offsets`,
      { method: 'PUT', headers: { 'content-type': V2 } },
    );
    assert.equal(committed.status, 200, JSON.stringify(committed.body));
    assert.deepEqual(
      committed.body.offsets.map(({ topic: t, partition, offset }) => ({ topic: t, partition, offset })),
      [{ topic, partition: 0, offset: 3 }],
    );
    // positions/first: the next poll starts over.
    const first = await client.call(`${base}/positions/first`, {
      body: { partitions: [{ topic, partition: 0 }] },
    });
    assert.equal(first.status, 204);
    const again = await client.pollUntil(base, JSON_TYPE, 3);
    assert.deepEqual(
      again.map((record) => record.offset),
      [0, 1, 2],
    );
    const last = await client.call(`${base}/positions/last`, {
      body: { partitions: [{ topic, partition: 0 }] },
    });
    assert.equal(last.status, 204);
    assert.equal((await client.call(`${base}/subscriptions`, { method: 'DELETE' })).status, 204);
  });

  it('writes dead letters the caller failed and hands them out once, committed', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('lm-dl'));
    await suite.kafka.createTopic(`${topic}.dlq`);
    const group = uniqueName('lm-dl-group');
    const { url } = await startTestBridge(suite.cleanup);
    const client = new BridgeClient(url);
    const written = await client.call<{ deadLetters: { topic: string; offsets: unknown[] }[] }>(
      '/consumers/deadLetter/active',
      {
        contentType: 'application/json',
        body: [
          {
            record: {
              topic,
              key: 'k1',
              value: { n: 1 },
              headers: { app: 'x' },
              partition: 0,
              offset: 4,
              timestamp: 1,
            },
            processed: false,
            stacktrace: 'java.lang.IllegalStateException: nope',
            correlationId: 'c1',
          },
          { record: { topic, key: 'k2', value: { n: 2 } }, processed: true },
        ],
      },
    );
    assert.equal(written.status, 200, JSON.stringify(written.body));
    assert.equal(written.body.deadLetters[0].topic, `${topic}.dlq`);
    assert.equal(written.body.deadLetters[0].offsets.length, 1);

    const read = await client.call<DeadLetterJson[]>(
      `/consumers/deadLetter/active?group=${group}&topic=${topic}&timeout=10000`,
    );
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.length, 1);
    assert.equal(read.body[0].key, 'k1');
    assert.deepEqual(read.body[0].value, { n: 1 });
    assert.equal(read.body[0].headers.StackTrace, 'java.lang.IllegalStateException: nope');
    assert.equal(read.body[0].headers['X-Correlation-Id'], 'c1');
    assert.equal(read.body[0].headers.app, 'x');
    // Committed: a second read finds nothing new.
    const again = await client.call<unknown[]>(
      `/consumers/deadLetter/active?group=${group}&topic=${topic}&timeout=1500`,
    );
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, []);
  });
});

/**
 * Push subscriptions in `mode: lightmesh` against the real broker and a backend written to the
 * light-mesh reactive consumer contract (`GET /health`, `POST /kafka/records` answered with one
 * `{processed, stacktrace, ...}` entry per record): dead letters, whole-batch redelivery (rollback
 * threshold, error status, malformed answers), the health wait, dead-letter replay and audit.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import type { KafkaMessage, Message } from 'kafkajs';
import { pino } from 'pino';
import { BridgeComponent } from '../bridge/bridge.js';
import { SubscriptionsComponent } from '../bridge/consumer/push/component.js';
import { validateConfig } from '../services/runtime/config.js';
import { createMetrics } from '../services/runtime/metrics.js';
import { BridgeClient } from './helpers/bridge-client.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { waitFor } from './helpers/wait.js';

interface LightmeshRecord {
  topic: string;
  key: unknown;
  value: { n: number } & Record<string, unknown>;
  headers: Record<string, string>;
  partition: number;
  offset: number;
  timestamp: number;
}

type Answer = { status: number; body: string };
type Handler = (batch: LightmeshRecord[], delivery: number) => Answer;

interface Backend {
  readonly url: string;
  /** Every batch POSTed, in arrival order. */
  readonly batches: LightmeshRecord[][];
  /** `health <status>` and `batch <size>` in arrival order. */
  readonly events: string[];
  handler: Handler;
  healthStatus: () => number;
}

const processed = (batch: LightmeshRecord[], fails: (record: LightmeshRecord) => boolean): Answer => ({
  status: 200,
  body: JSON.stringify(
    batch.map((record) =>
      fails(record)
        ? {
            record,
            processed: false,
            stacktrace: `java.lang.RuntimeException: record ${record.value.n} failed`,
            correlationId: record.headers['X-Correlation-Id'] ?? null,
            traceabilityId: record.headers['X-Traceability-Id'] ?? null,
            key: record.key,
            timestamp: record.timestamp,
          }
        : { record, processed: true, correlationId: record.headers['X-Correlation-Id'] ?? null },
    ),
  ),
});

async function startBackend(): Promise<Backend & { close(): Promise<void> }> {
  const backend = {
    url: '',
    batches: [] as LightmeshRecord[][],
    events: [] as string[],
    handler: ((batch) => processed(batch, () => false)) as Handler,
    healthStatus: () => 200,
  };
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      const status = backend.healthStatus();
      backend.events.push(`health ${status}`);
      res.writeHead(status).end(status === 200 ? 'OK' : 'ERROR');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const batch = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LightmeshRecord[];
      backend.batches.push(batch);
      backend.events.push(`batch ${batch.length}`);
      const answer = backend.handler(batch, backend.batches.length);
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(backend, {
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const headerText = (message: KafkaMessage, name: string) => {
  const value = message.headers?.[name];
  return value === undefined ? undefined : String(Array.isArray(value) ? value[0] : value);
};

describe('light-mesh reactive consumer (push subscription mode lightmesh)', function () {
  this.timeout(120_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;
  let backend: Backend;
  let logs: Record<string, unknown>[];

  beforeEach(async () => {
    const started = await startBackend();
    backend = started;
    cleanup.defer(() => started.close());
    logs = [];
  });

  function logger() {
    return pino(
      { level: 'info' },
      {
        write: (line: string) => {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        },
      },
    );
  }

  function configFor(topic: string, group: string, extra: Record<string, unknown> = {}) {
    return validateConfig({
      kafka: { bootstrap: suite.kafka.brokers },
      ingress: { enabled: false, target: backend.url },
      subscriptions: [
        {
          name: 'lightmesh',
          topics: [topic],
          group,
          mode: 'lightmesh',
          path: '/kafka/records',
          maxBatch: 10,
          autoOffsetReset: 'earliest',
          commitIntervalMs: 100,
          retry: { maxAttempts: 5, initialBackoffMs: 20, maxBackoffMs: 200 },
          ...extra,
        },
      ],
    });
  }

  async function startSubscription(topic: string, group: string, extra: Record<string, unknown> = {}) {
    const config = configFor(topic, group, extra);
    const component = new SubscriptionsComponent({
      subscriptions: config.subscriptions,
      kafka: config.kafka,
      target: config.ingress.target,
      metrics: createMetrics(),
      logger: logger(),
      tracer: trace.getTracer('lightmesh-test'),
      sessionTimeoutMs: 6_000,
      lagIntervalMs: 200,
    });
    await component.start();
    cleanup.defer(async () => {
      await component.stop();
      await (await suite.kafka.admin()).deleteGroups([group]).catch(() => undefined);
    });
    await waitFor(() => component.readiness().ready, { timeoutMs: 20_000, what: 'subscription joined' });
    return component;
  }

  /** Ten records `{n: 0..9}` in one produce request (one fetch, one batch), with correlation ids. */
  async function produceTen(topic: string, count = 10) {
    const producer = suite.kafka.producer({ idempotent: true });
    await producer.connect();
    const messages: Message[] = Array.from({ length: count }, (_, n) => ({
      key: `k${n}`,
      value: JSON.stringify({ n }),
      headers: { 'X-Correlation-Id': `corr-${n}`, 'X-Traceability-Id': `trace-${n}` },
    }));
    await producer.send({ topic, messages, acks: -1 });
  }

  async function committed(group: string, topic: string): Promise<number> {
    const [entry] = await (await suite.kafka.admin()).fetchOffsets({ groupId: group, topics: [topic] });
    return Number(entry.partitions[0].offset);
  }

  async function topics(prefix: string) {
    const topic = await suite.kafka.createTopic(uniqueName(prefix));
    await suite.kafka.createTopic(`${topic}.dlq`);
    return { topic, dlq: `${topic}.dlq`, group: uniqueName(`${prefix}-group`) };
  }

  it('dead-letters exactly the one record of ten answered processed:false, with StackTrace, and commits', async () => {
    const { topic, dlq, group } = await topics('lm-one');
    backend.handler = (batch) => processed(batch, (record) => record.value.n === 3);
    await produceTen(topic);
    await startSubscription(topic, group);
    await waitFor(async () => (await committed(group, topic)) === 10, {
      timeoutMs: 20_000,
      what: 'commit 10',
    });

    assert.equal(backend.batches.length, 1, 'delivered once, not redelivered');
    const [batch] = backend.batches;
    assert.deepEqual(
      batch.map((r) => r.offset),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    // The light-mesh record shape.
    assert.deepEqual(Object.keys(batch[0]).sort(), [
      'headers',
      'key',
      'offset',
      'partition',
      'timestamp',
      'topic',
      'value',
    ]);
    assert.equal(batch[0].topic, topic);
    assert.deepEqual(batch[3].value, { n: 3 });
    assert.equal(batch[3].headers['X-Correlation-Id'], 'corr-3');

    const [dead] = await suite.kafka.readTopic(dlq, 1);
    assert.equal(String(dead.key), 'k3');
    assert.equal(String(dead.value), JSON.stringify({ n: 3 }));
    assert.equal(headerText(dead, 'StackTrace'), 'java.lang.RuntimeException: record 3 failed');
    assert.equal(headerText(dead, 'X-Correlation-Id'), 'corr-3');
    assert.equal(headerText(dead, 'X-Traceability-Id'), 'trace-3');
    assert.equal(await suite.kafka.recordCount(dlq), 1);
  });

  it('redelivers the whole batch when 5 of 10 are processed:false, dead-lettering nothing', async () => {
    const { topic, dlq, group } = await topics('lm-half');
    backend.handler = (batch, delivery) => processed(batch, (record) => delivery === 1 && record.value.n < 5);
    await produceTen(topic);
    await startSubscription(topic, group);
    await waitFor(async () => (await committed(group, topic)) === 10, {
      timeoutMs: 20_000,
      what: 'commit 10',
    });
    assert.equal(backend.batches.length, 2);
    assert.deepEqual(backend.batches[1], backend.batches[0]);
    assert.equal(await suite.kafka.recordCount(dlq), 0);
    assert.ok(
      logs.some(
        (line) =>
          line.reason === 'rollback' && String(line.problem).includes('5 of 10 records not processed'),
      ),
      JSON.stringify(logs.slice(-5)),
    );
  });

  it('redelivers the batch with backoff after 500 answers', async () => {
    const { topic, dlq, group } = await topics('lm-500');
    backend.handler = (batch, delivery) =>
      delivery <= 2 ? { status: 500, body: 'boom' } : processed(batch, () => false);
    await produceTen(topic);
    await startSubscription(topic, group);
    await waitFor(async () => (await committed(group, topic)) === 10, {
      timeoutMs: 20_000,
      what: 'commit 10',
    });
    assert.equal(backend.batches.length, 3);
    assert.deepEqual(backend.batches[2], backend.batches[0]);
    const retries = logs.filter((line) => line.reason === 'status');
    assert.deepEqual(
      retries.map((line) => [line.attempt, line.problem, line.exhausted]),
      [
        [1, 'the backend answered HTTP 500', false],
        [2, 'the backend answered HTTP 500', false],
      ],
    );
    assert.equal(await suite.kafka.recordCount(dlq), 0);
  });

  it('handles an answer array of the wrong length as a failed batch, naming the problem in the log', async () => {
    const { topic, dlq, group } = await topics('lm-length');
    backend.handler = (batch, delivery) =>
      delivery === 1 ? processed(batch.slice(1), () => false) : processed(batch, () => false);
    await produceTen(topic);
    await startSubscription(topic, group);
    await waitFor(async () => (await committed(group, topic)) === 10, {
      timeoutMs: 20_000,
      what: 'commit 10',
    });
    assert.equal(backend.batches.length, 2);
    const line = logs.find((entry) => entry.reason === 'malformed');
    assert.ok(line, JSON.stringify(logs.slice(-5)));
    assert.equal(line.problem, "the backend's answer has 9 entries for a batch of 10 records");
    assert.match(String(line.msg), /9 entries for a batch of 10 records; the whole batch is redelivered/);
    assert.equal(await suite.kafka.recordCount(dlq), 0);
  });

  it('waits until the backend is healthy before the first batch', async () => {
    const { topic, group } = await topics('lm-health');
    let checks = 0;
    backend.healthStatus = () => (++checks <= 2 ? 503 : 200);
    await produceTen(topic, 2);
    await startSubscription(topic, group);
    await waitFor(async () => (await committed(group, topic)) === 2, { timeoutMs: 20_000, what: 'commit 2' });
    assert.deepEqual(backend.events.slice(0, 4), ['health 503', 'health 503', 'health 200', 'batch 2']);
  });

  it('replays dead letters with lastretry=true without dead-lettering them again', async () => {
    const { topic, dlq, group } = await topics('lm-replay');
    // Three dead letters, as the subscription writes them.
    const producer = suite.kafka.producer({ idempotent: true });
    await producer.connect();
    await producer.send({
      topic: dlq,
      acks: -1,
      messages: [0, 1, 2].map((n) => ({
        key: `k${n}`,
        value: JSON.stringify({ n }),
        headers: { 'X-Correlation-Id': `corr-${n}`, StackTrace: 'earlier failure' },
      })),
    });
    const config = configFor(topic, group, { lightmesh: { batchRollbackThreshold: 50 } });
    const bridge = new BridgeComponent({
      bridge: { ...config.bridge, enabled: true, port: 0 },
      kafka: config.kafka,
      baseDir: process.cwd(),
      version: '0.0.0-test',
      metrics: createMetrics(),
      logger: logger(),
      tracer: trace.getTracer('lightmesh-test'),
      lightmeshBackend: { target: backend.url, subscriptions: config.subscriptions },
    });
    await bridge.start();
    cleanup.defer(async () => {
      await bridge.stop();
      await (await suite.kafka.admin()).deleteGroups([`${group}.dlq`]).catch(() => undefined);
    });
    await waitFor(() => bridge.readiness().ready, { timeoutMs: 20_000, what: 'bridge ready' });
    // Record 1 fails again (1 of 3, under the threshold of 50 %).
    backend.handler = (batch) => processed(batch, (record) => record.value.n === 1);
    const client = new BridgeClient(bridge.url);
    const answer = await client.call<Record<string, unknown>>(
      `/consumers/deadLetter/reactive?group=${group}&topic=${topic}&timeout=10000&lastretry=true`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.group, group);
    assert.deepEqual(answer.body.topics, [dlq]);
    assert.equal(answer.body.records, 3);
    assert.equal(typeof answer.body.instance, 'string');
    assert.match(
      String(answer.body.description),
      /2 processed, 1 failed \(logged, not dead-lettered again\)/,
    );
    assert.deepEqual(
      backend.batches.flat().map((r) => [r.topic, r.value.n, r.headers.StackTrace]),
      [
        [dlq, 0, 'earlier failure'],
        [dlq, 1, 'earlier failure'],
        [dlq, 2, 'earlier failure'],
      ],
    );
    assert.equal(await suite.kafka.recordCount(dlq), 3, 'nothing dead-lettered again');
    // Committed: a second replay finds nothing.
    const again = await client.call<Record<string, unknown>>(
      `/consumers/deadLetter/reactive?group=${group}&topic=${topic}&timeout=1500&lastretry=true`,
    );
    assert.equal(again.body.records, 0);
    assert.equal(backend.batches.length, 1);
  });

  it('writes PRODUCER and REACTIVE_CONSUMER audit records with the records’ correlation ids', async () => {
    const { topic, group } = await topics('lm-audit');
    const auditTopic = await suite.kafka.createTopic(uniqueName('lm-audit-log'));
    const audit = { enabled: true, target: 'topic' as const, topic: auditTopic };
    const config = configFor(topic, group, {
      lightmesh: { batchRollbackThreshold: 50, serviceId: 'consumer-svc', audit },
    });
    const bridge = new BridgeComponent({
      bridge: {
        ...config.bridge,
        enabled: true,
        port: 0,
        lightmesh: { ...config.bridge.lightmesh, serviceId: 'producer-svc', audit },
      },
      kafka: config.kafka,
      baseDir: process.cwd(),
      version: '0.0.0-test',
      metrics: createMetrics(),
      logger: logger(),
      tracer: trace.getTracer('lightmesh-test'),
    });
    await bridge.start();
    cleanup.defer(() => bridge.stop());
    await waitFor(() => bridge.readiness().ready, { timeoutMs: 20_000, what: 'bridge ready' });
    const produced = await new BridgeClient(bridge.url).call(`/producers/${topic}`, {
      contentType: 'application/json',
      body: {
        keyFormat: 'STRING',
        records: [0, 1, 2].map((n) => ({
          key: `k${n}`,
          value: { n },
          correlationId: `c${n}`,
          traceabilityId: `t${n}`,
        })),
      },
    });
    assert.equal(produced.status, 200);
    backend.handler = (batch) => processed(batch, (record) => record.value.n === 2);
    await startSubscription(topic, group, {
      lightmesh: { batchRollbackThreshold: 50, serviceId: 'consumer-svc', audit, keyFormat: 'string' },
    });

    const records = await suite.kafka.readTopic(auditTopic, 6);
    type AuditJson = Record<
      | 'id'
      | 'auditType'
      | 'serviceId'
      | 'topic'
      | 'correlationId'
      | 'traceabilityId'
      | 'key'
      | 'auditStatus'
      | 'offset'
      | 'stacktrace',
      string | number | null
    >;
    const audits = records.map((record) => ({
      ...(JSON.parse(String(record.value)) as AuditJson),
      kafkaKey: String(record.key),
    }));
    const summary = audits
      .map(
        (a) =>
          `${a.auditType} ${a.serviceId} ${a.kafkaKey} ${a.correlationId} ${a.traceabilityId} ${a.key} ${a.auditStatus} ${a.offset}`,
      )
      .sort();
    assert.deepEqual(summary, [
      'PRODUCER producer-svc c0 c0 t0 k0 SUCCESS 0',
      'PRODUCER producer-svc c1 c1 t1 k1 SUCCESS 1',
      'PRODUCER producer-svc c2 c2 t2 k2 SUCCESS 2',
      'REACTIVE_CONSUMER consumer-svc c0 c0 t0 k0 SUCCESS 0',
      'REACTIVE_CONSUMER consumer-svc c1 c1 t1 k1 SUCCESS 1',
      'REACTIVE_CONSUMER consumer-svc c2 c2 t2 k2 FAILURE 2',
    ]);
    const failure = audits.find((a) => a.auditStatus === 'FAILURE')!;
    assert.equal(failure.stacktrace, 'java.lang.RuntimeException: record 2 failed');
    assert.equal(failure.topic, topic);
    for (const a of audits) assert.match(String(a.id), /^[0-9a-f-]{36}$/);
    assert.equal(await suite.kafka.recordCount(auditTopic), 6);
  });
});

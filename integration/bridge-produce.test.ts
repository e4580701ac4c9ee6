import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { Partitioners } from 'kafkajs';
import { request } from 'undici';
import type { BridgeComponent } from '../bridge/bridge.js';
import type { MeshMetrics } from '../services/runtime/metrics.js';
import type { Telemetry } from '../services/runtime/telemetry.js';
import { startTestBridge } from './helpers/bridge.js';
import {
  BINARY_TYPE,
  BridgeClient,
  JSON_TYPE,
  TEXT_TYPE,
  type BridgeAnswer,
} from './helpers/bridge-client.js';
import { getKafkaBootstrap, kafkaSuite, KafkaTestContext, uniqueName } from './helpers/kafka.js';
import { startSidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

type AnswerBody = {
  offsets?: { partition?: number; offset?: number; error_code?: number; message?: string }[];
  error_code?: number;
  message?: string;
  validation_errors?: { path: string; message: string }[];
};

describe('bridge produce API (real broker)', function () {
  this.timeout(60_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;
  let telemetry: Telemetry;
  let metrics: MeshMetrics;
  let bridge: BridgeComponent;

  async function startBridge(
    bridgeConfig: Record<string, unknown> = {},
    brokers = suite.kafka.brokers,
    baseDir = process.cwd(),
  ) {
    ({ bridge, telemetry, metrics } = await startTestBridge(cleanup, {
      bridge: { deliveryTimeoutMs: 10_000, ...bridgeConfig },
      brokers,
      baseDir,
    }));
    return bridge;
  }

  function call(
    path: string,
    options: { method?: string; contentType?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<BridgeAnswer<AnswerBody>> {
    return new BridgeClient(bridge.url).call<AnswerBody>(path, options);
  }

  it('produces json, binary and text records that an independent client reads back unchanged', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('bridge-formats'), 3);
    const json = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: {
        records: [
          { key: { id: 1 }, value: { order: 1, items: ['a'] }, headers: [{ key: 'h1', value: b64('one') }] },
          { value: 'plain string', partition: 2, timestamp: 1_700_000_000_000 },
          { key: 'tomb', value: null, partition: 1 },
        ],
      },
    });
    assert.equal(json.status, 200, JSON.stringify(json.body));
    assert.equal(json.headers['content-type'], 'application/vnd.kafka.v2+json; charset=utf-8');
    const binary = await call(`/topics/${topic}/partitions/0`, {
      contentType: BINARY_TYPE,
      body: { records: [{ key: b64('k-bin'), value: b64('\u0000\u0001binary') }] },
    });
    assert.equal(binary.status, 200, JSON.stringify(binary.body));
    assert.deepEqual(
      binary.body.offsets!.map((o) => o.partition),
      [0],
    );
    const text = await call(`/topics/${topic}`, {
      contentType: TEXT_TYPE,
      body: { records: [{ key: 'k-text', value: 'hello', partition: 1 }] },
    });
    assert.equal(text.status, 200, JSON.stringify(text.body));

    const records = await suite.kafka.readTopic(topic, 5);
    assert.equal(await suite.kafka.recordCount(topic), 5);
    const byValue = (value: string | null) => records.find((r) => (r.value?.toString() ?? null) === value)!;
    const first = byValue(JSON.stringify({ order: 1, items: ['a'] }));
    assert.equal(first.key!.toString(), JSON.stringify({ id: 1 }));
    assert.equal(first.headers!.h1!.toString(), 'one');
    assert.match(first.headers!.traceparent!.toString(), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(first.partition, json.body.offsets![0].partition);
    assert.equal(Number(first.offset), json.body.offsets![0].offset);
    const second = byValue(JSON.stringify('plain string'));
    assert.equal(second.partition, 2);
    assert.equal(second.timestamp, '1700000000000');
    assert.equal(second.key, null);
    const tombstone = records.find((r) => r.key?.toString() === JSON.stringify('tomb'))!;
    assert.equal(tombstone.value, null);
    assert.equal(tombstone.partition, 1);
    const bin = records.find((r) => r.key?.toString() === 'k-bin')!;
    assert.deepEqual(bin.value, Buffer.from('\u0000\u0001binary'));
    assert.equal(bin.partition, 0);
    const txt = records.find((r) => r.key?.toString() === 'k-text')!;
    assert.equal(txt.value!.toString(), 'hello');
    assert.equal(txt.partition, 1);
  });

  it('puts the same key on the same partition as any Kafka client (murmur2)', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('bridge-keys'), 5);
    const keys = Array.from({ length: 20 }, (_, i) => `customer-${i}`);
    const answer = await call(`/topics/${topic}`, {
      contentType: TEXT_TYPE,
      body: { records: [...keys, ...keys].map((key) => ({ key, value: `v-${key}` })) },
    });
    assert.equal(answer.status, 200);
    const offsets = answer.body.offsets!;
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = [0, 1, 2, 3, 4].map((partitionId) => ({
      partitionId,
      leader: 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));
    keys.forEach((key, i) => {
      assert.equal(offsets[i].partition, offsets[i + keys.length].partition, key);
      const expected = partitioner({ topic, partitionMetadata, message: { key, value: null } });
      assert.equal(offsets[i].partition, expected, key);
    });
    assert.ok(new Set(offsets.map((o) => o.partition)).size > 1, 'keys spread over partitions');
  });

  it('refuses records that fail the topic schema with 422 naming index and pointer, and produces nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bridge-schema-'));
    cleanup.defer(() => rm(dir, { recursive: true, force: true }));
    const topic = uniqueName('bridge-schema');
    await writeFile(
      join(dir, 'order.schema.json'),
      JSON.stringify({
        type: 'object',
        required: ['id'],
        additionalProperties: false,
        properties: { id: { type: 'integer' }, note: { type: 'string' } },
      }),
    );
    await startBridge({ topics: { [topic]: { schema: 'order.schema.json' } } }, suite.kafka.brokers, dir);
    await suite.kafka.createTopic(topic, 1);
    const bad = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: { id: 1 } }, { value: { id: 'two' } }, { value: { id: 3, extra: true } }] },
    });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error_code, 42202);
    assert.match(bad.body.message!, /record\(s\) 1, 2 fail the schema/);
    assert.deepEqual(
      bad.body.validation_errors!.map((e) => e.path),
      ['/records/1/value/id', '/records/2/value'],
    );
    assert.equal(await suite.kafka.recordCount(topic), 0);
    const good = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: { id: 1, note: 'ok' } }] },
    });
    assert.equal(good.status, 200);
    assert.equal(await suite.kafka.recordCount(topic), 1);
  });

  it('answers a repeated Idempotency-Key with the first result and produces once', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('bridge-idem'), 2);
    const body = {
      records: [
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ],
    };
    const headers = { 'idempotency-key': 'order-42' };
    const [first, concurrent] = await Promise.all([
      call(`/topics/${topic}`, { contentType: JSON_TYPE, body, headers }),
      call(`/topics/${topic}`, { contentType: JSON_TYPE, body, headers }),
    ]);
    const later = await call(`/topics/${topic}`, { contentType: JSON_TYPE, body, headers });
    assert.equal(first.status, 200);
    assert.deepEqual(concurrent.body, first.body);
    assert.deepEqual(later.body, first.body);
    assert.equal(await suite.kafka.recordCount(topic), 2);
    const other = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 3 }] },
      headers,
    });
    assert.equal(other.status, 422);
    assert.match(other.body.message!, /Idempotency-Key was already used with a different request/);
    assert.equal(await suite.kafka.recordCount(topic), 2);
  });

  it('answers unknown topics, unknown partitions, bad bodies and content types with Strimzi-style errors', async () => {
    await startBridge({ maxBodyBytes: 2048 });
    const topic = await suite.kafka.createTopic(uniqueName('bridge-errors'), 2);
    const unknownTopic = await call(`/topics/${uniqueName('missing')}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 1 }] },
    });
    assert.equal(unknownTopic.status, 404);
    assert.equal(unknownTopic.body.error_code, 40401);

    const unknownPartition = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: {
        records: [
          { value: 'ok', partition: 0 },
          { value: 'nope', partition: 7 },
        ],
      },
    });
    assert.equal(unknownPartition.status, 404);
    assert.equal(unknownPartition.body.offsets![0].partition, 0);
    assert.equal(unknownPartition.body.offsets![1].error_code, 40402);
    assert.equal(await suite.kafka.recordCount(topic), 1);

    const misplaced = await call(`/topics/${topic}/partitions/1`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 1, partition: 0 }] },
    });
    assert.equal(misplaced.status, 400);
    assert.deepEqual(
      misplaced.body.validation_errors!.map((e) => e.path),
      ['/records/0/partition'],
    );

    const shape = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ key: 1 }, { value: 1, colour: 'red' }] },
    });
    assert.equal(shape.status, 422);
    assert.equal(shape.body.error_code, 42201);
    assert.deepEqual(shape.body.validation_errors!.map((e) => e.path).sort(), [
      '/records/0/value',
      '/records/1/colour',
    ]);

    // JSON that is not an object (found by the fuzz test: `null` used to answer 500).
    for (const path of [`/topics/${topic}`, `/topics/${topic}/partitions/0`]) {
      const notAnObject = await call(path, { contentType: JSON_TYPE, body: null });
      assert.equal(notAnObject.status, 422, path);
      assert.equal(notAnObject.body.error_code, 42201, path);
    }

    const badBase64 = await call(`/topics/${topic}`, {
      contentType: BINARY_TYPE,
      body: { records: [{ value: 'not base64!' }] },
    });
    assert.equal(badBase64.status, 422);
    assert.deepEqual(
      badBase64.body.validation_errors!.map((e) => e.path),
      ['/records/0/value'],
    );

    const notJson = await call(`/topics/${topic}`, { contentType: JSON_TYPE, body: '{"records": [' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error_code, 40000);

    const wrongType = await call(`/topics/${topic}`, { contentType: 'text/plain', body: 'hello' });
    assert.equal(wrongType.status, 415);
    assert.equal(wrongType.body.error_code, 41501);

    const tooLarge = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 'x'.repeat(4096) }] },
    });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error_code, 41301);
    assert.equal(await suite.kafka.recordCount(topic), 1, 'no bad request produced anything');
  });

  it('answers 429 with Retry-After over the in-flight byte limit', async () => {
    await startBridge({ maxInFlightBytes: 16 });
    const topic = await suite.kafka.createTopic(uniqueName('bridge-pressure'), 1);
    const answer = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 'more than sixteen bytes' }] },
    });
    assert.equal(answer.status, 429);
    assert.equal(answer.body.error_code, 42901);
    assert.equal(answer.headers['retry-after'], '1');
    assert.equal(await suite.kafka.recordCount(topic), 0);
  });

  it('serves topic metadata like the Strimzi bridge', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('bridge-meta'), 2);
    await call(`/topics/${topic}/partitions/1`, {
      contentType: TEXT_TYPE,
      body: { records: [{ value: 'a' }, { value: 'b' }] },
    });
    const topics = await call('/topics');
    assert.ok((topics.body as unknown as string[]).includes(topic));
    assert.ok(!(topics.body as unknown as string[]).some((name) => name.startsWith('__')));
    const described = (await call(`/topics/${topic}`)).body as unknown as {
      name: string;
      configs: Record<string, string>;
      partitions: unknown[];
    };
    assert.equal(described.name, topic);
    assert.equal(described.configs['cleanup.policy'], 'delete');
    assert.deepEqual(described.partitions, [
      { partition: 0, leader: 1, replicas: [{ broker: 1, leader: true, in_sync: true }] },
      { partition: 1, leader: 1, replicas: [{ broker: 1, leader: true, in_sync: true }] },
    ]);
    assert.deepEqual((await call(`/topics/${topic}/partitions`)).body, described.partitions);
    assert.deepEqual((await call(`/topics/${topic}/partitions/1`)).body, described.partitions[1]);
    assert.deepEqual((await call(`/topics/${topic}/partitions/1/offsets`)).body, {
      beginning_offset: 0,
      end_offset: 2,
    });
    assert.equal((await call(`/topics/${topic}/partitions/9`)).body.error_code, 40402);
    assert.equal((await call(`/topics/${uniqueName('missing')}`)).body.error_code, 40401);
    const info = await call('/');
    assert.deepEqual(info.body, { bridge_version: '0.0.0-test' });
    const openapi = (await call('/openapi')).body as unknown as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    assert.equal(openapi.openapi, '3.1.0');
    assert.ok('/topics/{topicname}' in openapi.paths);
  });

  it('writes a PRODUCER span, child of the request span, into every record’s traceparent', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('bridge-trace'), 1);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const answer = await call(`/topics/${topic}`, {
      contentType: JSON_TYPE,
      body: { records: [{ value: 1 }, { value: 2 }] },
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    });
    assert.equal(answer.status, 200);
    await telemetry.forceFlush();
    const spans = telemetry.memoryExporter!.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER)!;
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.equal(producer.spanContext().traceId, traceId);
    assert.equal(producer.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(producer.name, `send ${topic}`);
    assert.equal(producer.attributes['messaging.system'], 'kafka');
    assert.equal(producer.attributes['messaging.destination.name'], topic);
    assert.equal(producer.attributes['messaging.batch.message_count'], 2);
    const records = await suite.kafka.readTopic(topic, 2);
    for (const record of records) {
      assert.equal(
        record.headers!.traceparent!.toString(),
        `00-${traceId}-${producer.spanContext().spanId}-01`,
      );
    }
    const counted = await metrics.bridgeProducedRecords.get();
    assert.deepEqual(
      counted.values.map((v) => [v.labels, v.value]),
      [[{ topic, result: 'success' }, 2]],
    );
  });
});

describe('bridge produce through the sidecar process', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('is ready once the producer connects, and produces over REST', async () => {
    const kafka = await KafkaTestContext.create();
    cleanup.defer(() => kafka.close());
    const topic = await kafka.createTopic(uniqueName('bridge-process'), 1);
    const sidecar = await startSidecarProcess({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: { enabled: false },
      kafka: { bootstrap: await getKafkaBootstrap() },
      bridge: { enabled: true, port: 0 },
      shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
    });
    cleanup.defer(() => sidecar.cleanup());
    await waitFor(async () => (await request(`${sidecar.urls.admin}/readyz`)).statusCode === 200, {
      timeoutMs: 20_000,
      what: 'sidecar ready with the bridge on',
    });
    const res = await request(`${sidecar.urls.bridge}/topics/${topic}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ key: 'k', value: { hello: 'kafka' } }] }),
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { offsets: [{ partition: 0, offset: 0 }] });
    const [record] = await kafka.readTopic(topic, 1);
    assert.equal(record.value!.toString(), '{"hello":"kafka"}');
    sidecar.proc.kill('SIGTERM');
    assert.equal(await sidecar.exited, 0);
  });
});

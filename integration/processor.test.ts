/**
 * Stream processors against the real broker and a real HTTP app: the ProcessorsComponent runs
 * in-process so tests can read its metrics; outputs are read to the end of their topics with a
 * read_committed consumer, so counts are exact.
 */
import assert from 'node:assert/strict';
import type { Message } from 'kafkajs';
import { pino } from 'pino';
import { ProcessorsComponent } from '../bridge/processor/component.js';
import { validateConfig } from '../services/runtime/config.js';
import { createMetrics, type MeshMetrics } from '../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../services/runtime/telemetry.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import {
  allCommitted,
  readToEnd,
  startProcessorApp,
  type ProcessorAnswer,
  type ProcessorRequest,
} from './helpers/processor.js';
import { waitFor } from './helpers/wait.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

describe('stream processors (real broker)', function () {
  this.timeout(60_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;
  let telemetry: Telemetry | undefined;
  let metrics: MeshMetrics;

  async function startProcessors(target: string, processors: Record<string, unknown>[]) {
    if (!telemetry) {
      telemetry = startTelemetry({ serviceName: 'processor-test', inMemory: true, env: {} });
      cleanup.defer(async () => {
        await telemetry?.shutdown();
        telemetry = undefined;
      });
    }
    metrics = createMetrics();
    const config = validateConfig({
      kafka: { bootstrap: suite.kafka.brokers },
      ingress: { target },
      processors: processors.map((p) => ({ autoOffsetReset: 'earliest', sessionTimeoutMs: 6_000, ...p })),
    });
    const component = new ProcessorsComponent({
      processors: config.processors,
      kafka: config.kafka,
      target: config.ingress.target,
      metrics,
      logger: pino({ level: process.env['PROCESSOR_TEST_LOG'] ?? 'silent' }),
      tracer: telemetry.tracer,
      lagIntervalMs: 200,
    });
    await component.start();
    cleanup.defer(() => component.stop());
    await waitFor(() => component.readiness().ready, { timeoutMs: 20_000, what: 'processors joined' });
    return component;
  }

  async function startApp(answer: (request: ProcessorRequest) => ProcessorAnswer) {
    const app = await startProcessorApp(answer);
    cleanup.defer(() => app.close());
    return app;
  }

  async function produce(topic: string, messages: Message[]) {
    const producer = suite.kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages, acks: -1 });
  }

  async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (metric?.values ?? []) as { labels: Record<string, string | number>; value: number }[];
    return values
      .filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l))
      .reduce((sum, v) => sum + v.value, 0);
  }

  const json = (value: Buffer | null) => JSON.parse(value?.toString('utf8') ?? 'null') as unknown;
  const header = (message: { headers?: Record<string, unknown> }, name: string) =>
    (message.headers?.[name] as Buffer | undefined)?.toString('utf8');

  for (const guarantee of ['exactly_once', 'at_least_once'] as const) {
    it(`maps one input to two outputs, with the input's trace in every output (${guarantee})`, async () => {
      const input = await suite.kafka.createTopic(uniqueName('proc-in'), 2);
      const upper = await suite.kafka.createTopic(uniqueName('proc-upper'));
      const lengths = await suite.kafka.createTopic(uniqueName('proc-len'));
      const group = uniqueName('proc-map');
      const app = await startApp(({ events }) => {
        const [event] = events;
        const word = event.data as string;
        return {
          status: 200,
          body: {
            records: [
              { topic: upper, key: event.partitionkey, value: word.toUpperCase(), valueEncoding: 'text' },
              { topic: lengths, key: event.partitionkey, value: { word, length: word.length } },
            ],
          },
        };
      });
      await startProcessors(app.url, [
        { name: 'map', topics: [input], group, path: '/map', outputTopics: [upper, lengths], guarantee },
      ]);
      const words = Array.from({ length: 20 }, (_, i) => `word${i}`);
      await produce(
        input,
        words.map((word, i) => ({
          key: `k${i % 4}`,
          value: word,
          headers: { traceparent: `00-${TRACE_ID}-${(i + 1).toString(16).padStart(16, '0')}-01` },
        })),
      );
      await waitFor(() => allCommitted(suite.kafka.kafka, group, input), {
        timeoutMs: 30_000,
        what: 'inputs committed',
      });

      const uppers = await readToEnd(suite.kafka.kafka, upper);
      const counts = await readToEnd(suite.kafka.kafka, lengths);
      assert.deepEqual(
        uppers.map((r) => r.value?.toString()).sort(),
        words.map((w) => w.toUpperCase()).sort(),
      );
      assert.deepEqual(
        counts.map((r) => json(r.value)).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        words
          .map((word) => ({ word, length: word.length }))
          .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      );
      // Keys carried over; every output continues its input's trace.
      for (const record of [...uppers, ...counts]) {
        assert.match(record.key?.toString() ?? '', /^k[0-3]$/);
        assert.equal(header(record, 'traceparent')?.split('-')[1], TRACE_ID);
      }
      // The app got CloudEvents with the trace context continued.
      assert.equal(app.requests[0].path, '/map');
      assert.equal(app.requests[0].headers['content-type'], 'application/cloudevents+json');
      assert.equal(String(app.requests[0].headers['traceparent']).split('-')[1], TRACE_ID);
      assert.equal(await metricValue('mesh_processor_processed_records_total', { processor: 'map' }), 20);
      // Lag per input partition, from the committed offsets: both partitions caught up.
      await waitFor(
        async () => {
          const lag = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_consumer_lag');
          const values = (lag?.values ?? []).filter((v) => v.labels['group'] === group);
          return values.length === 2 && values.every((v) => v.value === 0);
        },
        { what: 'mesh_consumer_lag 0 on both input partitions' },
      );
      assert.equal(await metricValue('mesh_processor_produced_records_total', { processor: 'map' }), 40);
      console.log(
        `      ${guarantee}: 20 inputs, ${app.requests.length} requests, ${uppers.length + counts.length} outputs`,
      );
    });
  }

  it('filters: zero outputs for some inputs, and their offsets are committed too (batch mode)', async () => {
    const input = await suite.kafka.createTopic(uniqueName('proc-in'));
    const output = await suite.kafka.createTopic(uniqueName('proc-even'));
    const group = uniqueName('proc-filter');
    const app = await startApp(({ events }) => ({
      status: 200,
      body: {
        records: events
          .filter((event) => (event.data as { n: number }).n % 2 === 0)
          .map((event) => ({ topic: output, value: event.data })),
      },
    }));
    await startProcessors(app.url, [
      { name: 'evens', topics: [input], group, outputTopics: [output], mode: 'batch', maxBatch: 7 },
    ]);
    await produce(
      input,
      Array.from({ length: 30 }, (_, n) => ({ value: JSON.stringify({ n }) })),
    );
    await waitFor(() => allCommitted(suite.kafka.kafka, group, input), {
      timeoutMs: 30_000,
      what: 'inputs committed',
    });
    const outputs = await readToEnd(suite.kafka.kafka, output);
    assert.deepEqual(
      outputs.map((r) => (json(r.value) as { n: number }).n),
      Array.from({ length: 15 }, (_, i) => i * 2),
    );
    assert.ok(app.requests.every((r) => r.events.length <= 7));
    assert.equal(app.requests[0].headers['content-type'], 'application/cloudevents-batch+json');
    assert.equal(await metricValue('mesh_processor_processed_records_total', { processor: 'evens' }), 30);
  });

  it('drains: the requests in flight finish and are committed with their outputs, nothing more', async () => {
    const input = await suite.kafka.createTopic(uniqueName('proc-in'));
    const output = await suite.kafka.createTopic(uniqueName('proc-out'));
    const group = uniqueName('proc-drain');
    const app = await startApp(({ events }) => ({
      status: 200,
      body: { records: [{ topic: output, value: events[0].data }] },
      delayMs: 20,
    }));
    const component = await startProcessors(app.url, [
      { name: 'drained', topics: [input], group, outputTopics: [output], commitRecords: 10 },
    ]);
    await produce(
      input,
      Array.from({ length: 200 }, (_, n) => ({ value: JSON.stringify({ n }) })),
    );
    await waitFor(() => app.requests.length >= 25, { timeoutMs: 20_000, what: '25 requests' });
    await component.drain();
    const answered = app.requests.length;
    const [entry] = await (await suite.kafka.admin()).fetchOffsets({ groupId: group, topics: [input] });
    const committed = Number(entry.partitions[0].offset);
    const outputs = await readToEnd(suite.kafka.kafka, output);
    // Every answered record (the one in flight at drain included) is committed, with its output.
    assert.ok(answered < 200, `drained before the end (${answered} answered)`);
    assert.equal(committed, answered);
    assert.deepEqual(
      outputs.map((r) => (json(r.value) as { n: number }).n),
      Array.from({ length: committed }, (_, n) => n),
    );
  });

  it('dead-letters failing records (4xx, a topic not allowed, retries exhausted) with their outputs intact', async () => {
    const input = await suite.kafka.createTopic(uniqueName('proc-in'));
    const output = await suite.kafka.createTopic(uniqueName('proc-out'));
    const dlq = await suite.kafka.createTopic(uniqueName('proc-dlq'));
    const group = uniqueName('proc-dlq-group');
    const app = await startApp(({ events }) => {
      const { n } = events[0].data as { n: number };
      if (n === 3) return { status: 422, body: { error: 'bad record' } };
      if (n === 5) return { status: 200, body: { records: [{ topic: 'not-allowed', value: n }] } };
      if (n === 7) return { status: 503 };
      return { status: 200, body: { records: [{ topic: output, value: { n } }] } };
    });
    await startProcessors(app.url, [
      {
        name: 'fragile',
        topics: [input],
        group,
        outputTopics: [output],
        deadLetterTopic: dlq,
        retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 },
      },
    ]);
    await produce(
      input,
      Array.from({ length: 10 }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }) })),
    );
    await waitFor(() => allCommitted(suite.kafka.kafka, group, input), {
      timeoutMs: 30_000,
      what: 'inputs committed',
    });

    const outputs = await readToEnd(suite.kafka.kafka, output);
    assert.deepEqual(
      outputs.map((r) => (json(r.value) as { n: number }).n),
      [0, 1, 2, 4, 6, 8, 9],
    );
    const dead = await readToEnd(suite.kafka.kafka, dlq);
    assert.deepEqual(
      dead.map((r) => [
        (json(r.value) as { n: number }).n,
        r.key?.toString(),
        header(r, 'mesh.dlq.reason'),
        header(r, 'mesh.dlq.status'),
        header(r, 'mesh.attempts'),
        header(r, 'mesh.original.topic'),
      ]),
      [
        [3, 'k3', 'poison', '422', '1', input],
        [5, 'k5', 'topic-not-allowed', '200', '1', input],
        [7, 'k7', 'retries-exhausted', '503', '3', input],
      ],
    );
    assert.match(header(dead[1], 'mesh.dlq.detail') ?? '', /not-allowed/);
    assert.equal(app.seen.get(`${input}-0-7`), 3);
    assert.equal(await metricValue('mesh_processor_dead_letters_total', { processor: 'fragile' }), 3);
    assert.equal(
      await metricValue('mesh_processor_processed_records_total', {
        processor: 'fragile',
        result: 'dead_letter',
      }),
      3,
    );
    assert.equal(
      await metricValue('mesh_processor_processed_records_total', {
        processor: 'fragile',
        result: 'success',
      }),
      7,
    );
  });
});

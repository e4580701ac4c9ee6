/**
 * Push subscriptions against the real broker and a real HTTP app (contract section 7): the
 * SubscriptionsComponent runs in-process so tests can read its metrics and spans; the app is a
 * node:http server on port 0 whose answers each test scripts.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind } from '@opentelemetry/api';
import type { Message } from 'kafkajs';
import { pino } from 'pino';
import { SubscriptionsComponent } from '../bridge/consumer/push/component.js';
import { validateConfig } from '../services/runtime/config.js';
import { createMetrics, type MeshMetrics } from '../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../services/runtime/telemetry.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { waitFor } from './helpers/wait.js';

interface Delivery {
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
  readonly receivedAt: number;
}
type Answer = { status: number; body?: unknown; delayMs?: number };

interface TestApp {
  readonly url: string;
  readonly port: number;
  readonly deliveries: Delivery[];
  inFlight: number;
  maxInFlight: number;
  close(): Promise<void>;
  listen(): Promise<void>;
}

/** An app that records every request and answers with `answer(delivery)`. */
async function startApp(
  answer: (delivery: Delivery) => Answer = () => ({ status: 204 }),
  port = 0,
): Promise<TestApp> {
  let server: Server;
  const app: TestApp = {
    url: '',
    port: 0,
    deliveries: [],
    inFlight: 0,
    maxInFlight: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    listen: async () => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const delivery: Delivery = {
            headers: req.headers,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
            receivedAt: Date.now(),
          };
          app.deliveries.push(delivery);
          app.inFlight += 1;
          app.maxInFlight = Math.max(app.maxInFlight, app.inFlight);
          const { status, body, delayMs = 0 } = answer(delivery);
          setTimeout(() => {
            app.inFlight -= 1;
            res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
            res.end(body === undefined ? undefined : JSON.stringify(body));
          }, delayMs);
        });
      });
      await new Promise<void>((resolve) => server.listen(app.port || port, '127.0.0.1', resolve));
      (app as { port: number }).port = (server.address() as AddressInfo).port;
      (app as { url: string }).url = `http://127.0.0.1:${app.port}`;
    },
  };
  await app.listen();
  return app;
}

type Event = Record<string, unknown> & { id: string; kafkapartition: number; kafkaoffset: string };
const events = (app: TestApp): Event[] =>
  app.deliveries.flatMap((d) => (Array.isArray(d.body) ? (d.body as Event[]) : [d.body as Event]));
const uniqueIds = (app: TestApp) => new Set(events(app).map((e) => e.id));

describe('push subscriptions (real broker)', function () {
  this.timeout(60_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;
  let telemetry: Telemetry | undefined;
  let metrics: MeshMetrics;

  async function startSubscriptions(
    target: string,
    subscriptions: Record<string, unknown>[],
    prefetch?: { records?: number; bytes?: number },
  ) {
    // A second component in the same test (another group member) shares the telemetry.
    if (!telemetry) {
      telemetry = startTelemetry({ serviceName: 'push-test', inMemory: true, env: {} });
      cleanup.defer(async () => {
        await telemetry?.shutdown();
        telemetry = undefined;
      });
    }
    metrics = createMetrics();
    const config = validateConfig({
      kafka: { bootstrap: suite.kafka.brokers },
      ingress: { target },
      subscriptions: subscriptions.map((s) => ({ autoOffsetReset: 'earliest', commitIntervalMs: 100, ...s })),
    });
    const component = new SubscriptionsComponent({
      subscriptions: config.subscriptions,
      kafka: config.kafka,
      target: config.ingress.target,
      metrics,
      logger: pino({ level: process.env['PUSH_TEST_LOG'] ?? 'silent' }),
      tracer: telemetry.tracer,
      sessionTimeoutMs: 6_000,
      lagIntervalMs: 200,
      ...(prefetch ? { prefetch } : {}),
    });
    await component.start();
    cleanup.defer(() => component.stop());
    await waitFor(() => component.readiness().ready, { timeoutMs: 20_000, what: 'subscriptions joined' });
    return component;
  }

  async function produce(topic: string, messages: Message[]) {
    const producer = suite.kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages, acks: -1 });
  }

  /** Committed offsets of `group` on `topic`, by partition (-1: nothing committed). */
  async function committed(group: string, topic: string): Promise<Record<number, number>> {
    const [entry] = await (await suite.kafka.admin()).fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries(entry.partitions.map((p) => [p.partition, Number(p.offset)]));
  }

  async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (metric?.values ?? []) as { labels: Record<string, string | number>; value: number }[];
    return values
      .filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l))
      .reduce((sum, v) => sum + v.value, 0);
  }

  const names = () => ({
    topic: uniqueName('push'),
    group: uniqueName('push-group'),
    name: uniqueName('sub'),
  });

  it('delivers records as CloudEvents with the trace context, in partition order, and commits them', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 3);
    const app = await startApp(() => ({ status: 200, body: { ok: true }, delayMs: 2 }));
    cleanup.defer(() => app.close());
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await produce(
      topic,
      Array.from({ length: 30 }, (_, i) => ({
        key: `key-${i % 5}`,
        value: JSON.stringify({ seq: i }),
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      })),
    );
    await startSubscriptions(app.url, [{ name, group, topics: [topic], path: '/events/in' }]);
    await waitFor(() => uniqueIds(app).size === 30, { timeoutMs: 20_000, what: '30 deliveries' });

    for (const delivery of app.deliveries) {
      assert.equal(delivery.headers['content-type'], 'application/cloudevents+json');
      const event = delivery.body as Event;
      assert.equal(event.specversion, '1.0');
      assert.equal(event.id, `${topic}-${event.kafkapartition}-${event.kafkaoffset}`);
      assert.equal(event.kafkatopic, topic);
      assert.equal(event.source, `/kafka/${topic}`);
      assert.equal(typeof event.type, 'string');
      assert.ok(!Number.isNaN(Date.parse(event.time as string)));
      assert.match(event.partitionkey as string, /^key-\d$/);
      assert.equal(event.datacontenttype, 'application/json');
      assert.equal(typeof (event.data as { seq: number }).seq, 'number');
      // The delivery continues the producer's trace: same trace id, a new span id.
      const [, headerTrace, spanId] = (delivery.headers.traceparent as string).split('-');
      assert.equal(headerTrace, traceId);
      assert.notEqual(spanId, '00f067aa0ba902b7');
    }
    // Per partition: offsets strictly increasing, one request in flight at a time.
    const byPartition = new Map<number, number[]>();
    for (const event of events(app)) {
      byPartition.set(event.kafkapartition, [
        ...(byPartition.get(event.kafkapartition) ?? []),
        Number(event.kafkaoffset),
      ]);
    }
    for (const offsets of byPartition.values()) {
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
      );
    }
    await waitFor(
      async () => {
        const offsets = await committed(group, topic);
        const ends = await (await suite.kafka.admin()).fetchTopicOffsets(topic);
        return ends.every((end) => offsets[end.partition] === Number(end.high));
      },
      { what: 'every offset committed' },
    );
    assert.equal(
      await metricValue('mesh_subscription_deliveries_total', { subscription: name, result: 'success' }),
      30,
    );

    await telemetry!.forceFlush();
    const consumerSpans = telemetry!
      .memoryExporter!.getFinishedSpans()
      .filter((s) => s.kind === SpanKind.CONSUMER);
    assert.equal(consumerSpans.length, 30);
    for (const span of consumerSpans) {
      assert.equal(span.spanContext().traceId, traceId);
      assert.equal(span.links[0]?.context.spanId, '00f067aa0ba902b7');
    }
  });

  it('retries 503 and RETRY answers, then succeeds', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 1);
    const attempts = new Map<string, number>();
    const app = await startApp((delivery) => {
      const id = (delivery.body as Event).id;
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      if (attempt === 1) return { status: 503 };
      if (attempt === 2) return { status: 200, body: { status: 'RETRY' } };
      return { status: 200 };
    });
    cleanup.defer(() => app.close());
    await produce(topic, [{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    await startSubscriptions(app.url, [
      { name, group, topics: [topic], retry: { maxAttempts: 5, initialBackoffMs: 5, maxBackoffMs: 20 } },
    ]);
    await waitFor(async () => (await committed(group, topic))[0] === 3, { what: 'all three committed' });
    assert.deepEqual([...attempts.values()], [3, 3, 3]);
    assert.equal(
      await metricValue('mesh_subscription_deliveries_total', { subscription: name, result: 'retry' }),
      6,
    );
    assert.equal(
      await metricValue('mesh_subscription_deliveries_total', { subscription: name, result: 'success' }),
      3,
    );
    // In order: a's three attempts all came before b's first.
    const order = events(app).map((e) => e.data);
    assert.deepEqual(order, ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c', 'c']);
  });

  it('writes a 400-answered record to the dead-letter topic with its key, value, headers and mesh.* headers', async () => {
    const { topic, group, name } = names();
    const dlq = `${topic}.dlq`;
    await suite.kafka.createTopic(topic, 1);
    await suite.kafka.createTopic(dlq, 1);
    const app = await startApp((delivery) =>
      (delivery.body as Event).data === 'bad' ? { status: 400 } : { status: 204 },
    );
    cleanup.defer(() => app.close());
    await produce(topic, [
      { key: 'k1', value: 'good' },
      { key: 'k2', value: 'bad', headers: { 'x-origin': 'test' } },
      { key: 'k3', value: 'good' },
    ]);
    await startSubscriptions(app.url, [{ name, group, topics: [topic], deadLetterTopic: dlq }]);
    const [dead] = await suite.kafka.readTopic(dlq, 1);
    assert.equal(dead.key!.toString(), 'k2');
    assert.equal(dead.value!.toString(), 'bad');
    const header = (key: string) => dead.headers![key]!.toString();
    assert.equal(header('x-origin'), 'test');
    assert.equal(header('mesh.dlq.reason'), 'poison');
    assert.equal(header('mesh.dlq.status'), '400');
    assert.equal(header('mesh.original.topic'), topic);
    assert.equal(header('mesh.original.partition'), '0');
    assert.equal(header('mesh.original.offset'), '1');
    assert.equal(header('mesh.attempts'), '1');
    await waitFor(async () => (await committed(group, topic))[0] === 3, {
      what: 'commit past the dead letter',
    });
    assert.equal(await suite.kafka.recordCount(dlq), 1);
    assert.equal(
      await metricValue('mesh_subscription_deliveries_total', { subscription: name, result: 'dead_letter' }),
      1,
    );
    assert.equal(await metricValue('mesh_subscription_dead_letters_total', { subscription: name }), 1);
  });

  it('blocks at a poison record without a dead-letter topic and never commits past it', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 1);
    let poisonAttempts = 0;
    const app = await startApp((delivery) => {
      if ((delivery.body as Event).data !== 'bad') return { status: 204 };
      poisonAttempts += 1;
      return { status: 422 };
    });
    cleanup.defer(() => app.close());
    await produce(topic, [{ value: 'good' }, { value: 'bad' }, { value: 'after-1' }, { value: 'after-2' }]);
    await startSubscriptions(app.url, [
      { name, group, topics: [topic], retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 200 } },
    ]);
    // Tried again after each pause: still poison, still blocking.
    await waitFor(() => poisonAttempts >= 3, { what: 'the poison record tried three times' });
    await waitFor(async () => (await committed(group, topic))[0] === 1, {
      what: 'commit up to the poison record',
    });
    assert.ok(
      !events(app).some((e) => String(e.data).startsWith('after')),
      'nothing after the poison record',
    );
    await waitFor(
      async () => (await metricValue('mesh_subscription_paused_partitions', { subscription: name })) <= 1,
      {
        what: 'paused gauge',
      },
    );
    assert.equal((await committed(group, topic))[0], 1);
  });

  it('pauses while the app is down, commits nothing, and delivers everything once it is back', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 2);
    const app = await startApp();
    await app.close(); // the port is known and refuses connections now
    cleanup.defer(() => app.close().catch(() => undefined));
    await produce(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
    );
    await startSubscriptions(app.url, [
      { name, group, topics: [topic], retry: { maxAttempts: 2, initialBackoffMs: 20, maxBackoffMs: 300 } },
    ]);
    await waitFor(
      async () => (await metricValue('mesh_subscription_paused_partitions', { subscription: name })) >= 1,
      {
        what: 'a paused partition',
      },
    );
    await waitFor(async () => (await metricValue('mesh_consumer_lag', { group })) === 20, {
      what: 'lag of 20',
    });
    assert.deepEqual(Object.values(await committed(group, topic)), [-1, -1]);
    assert.equal(await metricValue('mesh_subscription_deliveries_total', { subscription: name }), 0);

    await app.listen();
    await waitFor(() => uniqueIds(app).size === 20, {
      timeoutMs: 20_000,
      what: 'all 20 delivered after the app came back',
    });
    await waitFor(
      async () => Object.values(await committed(group, topic)).reduce((a, b) => a + b, 0) === 20,
      { what: 'everything committed' },
    );
    await waitFor(async () => (await metricValue('mesh_consumer_lag', { group })) === 0, {
      what: 'lag back to 0',
    });
  });

  it('key ordering delivers keys in parallel, each key in order, within the concurrency cap', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 1);
    const app = await startApp(() => ({ status: 204, delayMs: 15 }));
    cleanup.defer(() => app.close());
    await produce(
      topic,
      Array.from({ length: 40 }, (_, i) => ({
        key: `k${i % 5}`,
        value: JSON.stringify({ key: `k${i % 5}`, seq: i }),
      })),
    );
    await startSubscriptions(app.url, [{ name, group, topics: [topic], ordering: 'key', maxConcurrency: 3 }]);
    await waitFor(() => uniqueIds(app).size === 40, { timeoutMs: 20_000, what: '40 deliveries' });
    const perKey = new Map<string, number[]>();
    for (const event of events(app)) {
      const { key, seq } = event.data as { key: string; seq: number };
      perKey.set(key, [...(perKey.get(key) ?? []), seq]);
    }
    for (const seqs of perKey.values())
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
      );
    assert.ok(app.maxInFlight > 1, `parallel across keys (max in flight ${app.maxInFlight})`);
    assert.ok(app.maxInFlight <= 3, `capped at maxConcurrency (max in flight ${app.maxInFlight})`);
    await waitFor(async () => (await committed(group, topic))[0] === 40, { what: 'all committed' });
  });

  it('commits what a member finished before a rebalance takes its partitions (no redelivery)', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 4);
    const app = await startApp(() => ({ status: 204, delayMs: 5 }));
    cleanup.defer(() => app.close());
    await produce(
      topic,
      Array.from({ length: 400 }, (_, i) => ({ key: `k${i % 16}`, value: String(i) })),
    );
    // Commits only by interval, and rarely: the revoke path has to flush them.
    const subscription = { name, group, topics: [topic], commitIntervalMs: 60_000, commitRecords: 100_000 };
    await startSubscriptions(app.url, [subscription]);
    await waitFor(() => uniqueIds(app).size >= 50, { what: 'the first member under way' });
    await startSubscriptions(app.url, [{ ...subscription, name: `${name}-2` }]);
    await waitFor(() => uniqueIds(app).size === 400, { timeoutMs: 30_000, what: 'all 400 delivered' });
    assert.equal(events(app).length, 400, 'no record delivered twice');
  });

  it('prefetch: the app going down mid-stream with a full queue commits nothing past the first undelivered record, and everything arrives after recovery', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 1);
    const answered = new Set<number>();
    let down = false;
    const app: TestApp = await startApp((delivery) => {
      const offset = Number((delivery.body as Event).kafkaoffset);
      if (!down && offset === 9) {
        // The app dies while answering offset 9: that request and everything after it fail.
        down = true;
        setImmediate(() => void app.close());
        return { status: 204, delayMs: 1_000 };
      }
      if (!down) answered.add(offset);
      return { status: 204 };
    });
    cleanup.defer(() => app.close().catch(() => undefined));
    await produce(
      topic,
      Array.from({ length: 60 }, (_, i) => ({ key: `k${i % 7}`, value: JSON.stringify({ seq: i }) })),
    );
    // A queue of 5 with a backlog of 60: the queue is full whenever the app is slower than the fetch.
    await startSubscriptions(
      app.url,
      [{ name, group, topics: [topic], retry: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 200 } }],
      { records: 5 },
    );
    await waitFor(() => down, { what: 'the app going down at offset 9' });
    await waitFor(
      async () => (await metricValue('mesh_subscription_paused_partitions', { subscription: name })) >= 1,
      { what: 'the partition paused' },
    );
    const firstUndelivered = Math.min(
      ...Array.from({ length: 60 }, (_, i) => i).filter((i) => !answered.has(i)),
    );
    assert.equal(firstUndelivered, 9);
    // Watch the committed offset while the app stays down (several resume attempts fail meanwhile).
    let highestCommitted = -1;
    let probes = 0;
    await waitFor(
      async () => {
        highestCommitted = Math.max(highestCommitted, (await committed(group, topic))[0]);
        probes += 1;
        return probes >= 20;
      },
      { intervalMs: 50, what: 'probes of the committed offset' },
    );
    assert.ok(
      highestCommitted <= firstUndelivered,
      `committed ${highestCommitted} while offset ${firstUndelivered} was not delivered`,
    );
    const deliveredWhileDown = new Set(events(app).map((e) => Number(e.kafkaoffset)));
    assert.ok(![...deliveredWhileDown].some((o) => o > 9), 'nothing past the failed record was sent');

    const before = app.deliveries.length;
    await app.listen();
    await waitFor(() => uniqueIds(app).size === 60, {
      timeoutMs: 20_000,
      what: 'all 60 delivered after recovery',
    });
    await waitFor(async () => (await committed(group, topic))[0] === 60, { what: 'all 60 committed' });
    // After recovery the partition is delivered from offset 9 on, in order, with no gap.
    const after = app.deliveries.slice(before).map((d) => Number((d.body as Event).kafkaoffset));
    assert.deepEqual(
      [...new Set(after)],
      Array.from({ length: 51 }, (_, i) => i + 9),
    );
  });

  it('prefetch: a rebalance that revokes a partition with records queued loses nothing and commits them before it leaves', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 2);
    const app = await startApp(() => ({ status: 204, delayMs: 3 }));
    cleanup.defer(() => app.close());
    // ~20 KB values: kafkajs fetches ~50 of them per partition and round, so the member prefetches
    // (hands records to the queue and fetches again) instead of waiting for each batch.
    const filler = 'x'.repeat(20_000);
    for (let start = 0; start < 300; start += 30) {
      await produce(
        topic,
        Array.from({ length: 30 }, (_, i) => ({
          key: `k${(start + i) % 10}`,
          value: JSON.stringify({ seq: start + i, filler }),
        })),
      );
    }
    const subscription = { name, group, topics: [topic], commitIntervalMs: 60_000, commitRecords: 100_000 };
    await startSubscriptions(app.url, [subscription], { records: 100 });
    await waitFor(() => uniqueIds(app).size >= 40, { what: 'the first member under way' });
    await startSubscriptions(app.url, [{ ...subscription, name: `${name}-2` }], { records: 100 });
    await waitFor(() => uniqueIds(app).size === 300, { timeoutMs: 30_000, what: 'all 300 delivered' });
    await waitFor(
      async () => Object.values(await committed(group, topic)).reduce((a, b) => a + b, 0) === 300,
      { what: 'all 300 committed' },
    );
    // Per partition, the first delivery of each offset comes in offset order.
    const firsts = new Map<number, number[]>();
    const seen = new Set<string>();
    for (const event of events(app)) {
      if (seen.has(event.id)) continue;
      seen.add(event.id);
      firsts.set(event.kafkapartition, [
        ...(firsts.get(event.kafkapartition) ?? []),
        Number(event.kafkaoffset),
      ]);
    }
    for (const offsets of firsts.values())
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
      );
    assert.equal(
      events(app).length,
      300,
      'no record delivered twice: the revoked member committed before it left',
    );
  });

  it('batch mode delivers CloudEvents batches and retries only the events answered RETRY', async () => {
    const { topic, group, name } = names();
    await suite.kafka.createTopic(topic, 1);
    const retried = new Set<string>();
    const app = await startApp((delivery) => {
      const batch = delivery.body as Event[];
      const statuses = batch.map((event) => {
        if (Number(event.kafkaoffset) % 7 === 3 && !retried.has(event.id)) {
          retried.add(event.id);
          return { id: event.id, status: 'RETRY' };
        }
        return { id: event.id, status: 'SUCCESS' };
      });
      return { status: 200, body: { statuses } };
    });
    cleanup.defer(() => app.close());
    await produce(
      topic,
      Array.from({ length: 50 }, (_, i) => ({ value: JSON.stringify({ seq: i }) })),
    );
    await startSubscriptions(app.url, [
      {
        name,
        group,
        topics: [topic],
        mode: 'batch',
        maxBatch: 10,
        retry: { initialBackoffMs: 5, maxBackoffMs: 20 },
      },
    ]);
    await waitFor(async () => (await committed(group, topic))[0] === 50, { what: 'all 50 committed' });
    assert.equal(uniqueIds(app).size, 50);
    for (const delivery of app.deliveries) {
      assert.equal(delivery.headers['content-type'], 'application/cloudevents-batch+json');
      assert.ok(Array.isArray(delivery.body) && delivery.body.length <= 10);
    }
    assert.ok(
      app.deliveries.some((d) => (d.body as Event[]).length > 1),
      'records batched',
    );
    // Events answered RETRY came again, alone among those of their batch that succeeded.
    for (const id of retried) assert.equal(events(app).filter((e) => e.id === id).length, 2);
    assert.equal(events(app).length, 50 + retried.size);
  });
});

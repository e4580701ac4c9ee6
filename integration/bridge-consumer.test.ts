import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import type { BridgeComponent } from '../bridge/bridge.js';
import type { Telemetry } from '../services/runtime/telemetry.js';
import {
  BINARY_TYPE,
  BridgeClient,
  JSON_TYPE,
  TEXT_TYPE,
  type PolledRecord,
} from './helpers/bridge-client.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { startTestBridge } from './helpers/bridge.js';
import { waitFor } from './helpers/wait.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

interface Created {
  instance_id: string;
  base_uri: string;
}
interface ErrorBody {
  error_code: number;
  message: string;
}

describe('bridge pull consumers (real broker)', function () {
  this.timeout(90_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;
  let telemetry: Telemetry;
  let bridge: BridgeComponent;
  let client: BridgeClient;

  async function startBridge(bridgeConfig: Record<string, unknown> = {}): Promise<BridgeClient> {
    ({ bridge, telemetry } = await startTestBridge(cleanup, {
      bridge: bridgeConfig,
      brokers: suite.kafka.brokers,
    }));
    client = new BridgeClient(bridge.url);
    return client;
  }

  /** Creates an instance (deleted in cleanup unless the test deleted it) and returns its base URI. */
  async function createInstance(group: string, body: Record<string, unknown> = {}): Promise<string> {
    const created = await client.call<Created>(`/consumers/${group}`, { body });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    cleanup.defer(() => client.call(created.body.base_uri, { method: 'DELETE' }).catch(() => undefined));
    return created.body.base_uri;
  }

  async function produce(topic: string, contentType: string, records: unknown[]): Promise<void> {
    const answer = await client.call(`/topics/${topic}`, { contentType, body: { records } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  }

  async function subscribe(base: string, topics: string[]): Promise<void> {
    const answer = await client.call(`${base}/subscription`, { body: { topics } });
    assert.equal(answer.status, 204, JSON.stringify(answer.body));
  }

  async function committed(group: string, topic: string): Promise<Record<number, number>> {
    const admin = await suite.kafka.admin();
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries(entry.partitions.map((p) => [p.partition, Number(p.offset)]));
  }

  it('creates, subscribes, polls, commits and deletes an instance', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-basic'), 1);
    const group = uniqueName('pull-group');
    const created = await client.call<Created>(`/consumers/${group}`, {
      body: {
        name: 'consumer-1',
        format: 'json',
        'auto.offset.reset': 'earliest',
        'enable.auto.commit': false,
        'fetch.min.bytes': 1,
        'consumer.request.timeout.ms': 30000,
        'isolation.level': 'read_committed',
      },
    });
    assert.equal(created.status, 200);
    assert.equal(created.headers['content-type'], 'application/vnd.kafka.v2+json; charset=utf-8');
    assert.deepEqual(created.body, {
      instance_id: 'consumer-1',
      base_uri: `${bridge.url}/consumers/${group}/instances/consumer-1`,
    });
    const base = created.body.base_uri;
    cleanup.defer(() => client.call(base, { method: 'DELETE' }));

    await subscribe(base, [topic]);
    const subscription = await client.call<{ topics: string[] }>(`${base}/subscription`);
    assert.equal(subscription.status, 200);
    assert.deepEqual(subscription.body.topics, [topic]);

    await produce(topic, JSON_TYPE, [
      { key: 'a', value: { n: 1 } },
      { key: 'b', value: { n: 2 } },
      { key: 'c', value: { n: 3 } },
    ]);
    const records = await client.pollUntil(base, JSON_TYPE, 3);
    assert.deepEqual(
      records.map((r) => [r.topic, r.key, r.value, r.partition, r.offset]),
      [
        [topic, 'a', { n: 1 }, 0, 0],
        [topic, 'b', { n: 2 }, 0, 1],
        [topic, 'c', { n: 3 }, 0, 2],
      ],
    );
    assert.ok(records.every((r) => typeof r.timestamp === 'number' && r.timestamp > 0));

    const assignment = await client.call<Record<string, unknown>>(`${base}/subscription`);
    assert.deepEqual(assignment.body.partitions, [{ [topic]: [0] }]);

    const commit = await client.call(`${base}/offsets`, { method: 'POST' });
    assert.equal(commit.status, 204);
    assert.deepEqual(await committed(group, topic), { 0: 3 });

    const explicit = await client.call(`${base}/offsets`, {
      body: { offsets: [{ topic, partition: 0, offset: 1 }] },
    });
    assert.equal(explicit.status, 204);
    assert.deepEqual(await committed(group, topic), { 0: 1 });

    const unsubscribed = await client.call(`${base}/subscription`, { method: 'DELETE' });
    assert.equal(unsubscribed.status, 204);
    const notSubscribed = await client.call<ErrorBody>(`${base}/records`, { accept: JSON_TYPE });
    assert.equal(notSubscribed.status, 409);
    assert.equal(notSubscribed.body.error_code, 40904);

    const deleted = await client.call(base, { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    const gone = await client.call<ErrorBody>(`${base}/records`, { accept: JSON_TYPE });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error_code, 40403);
  });

  it('round-trips json, binary and text records with the produce API, headers base64', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-formats'), 1);
    await produce(topic, JSON_TYPE, [
      { key: { id: 1 }, value: { items: ['x', 2, null] }, headers: [{ key: 'h', value: b64('one') }] },
    ]);
    await produce(topic, BINARY_TYPE, [{ key: b64('\u0000bin'), value: b64('\u0001\u0002payload') }]);
    await produce(topic, TEXT_TYPE, [{ key: 'text-key', value: 'hello text' }, { value: null }]);

    const read = async (format: string, accept: string): Promise<PolledRecord[]> => {
      const base = await createInstance(uniqueName('pull-fmt'), { format, 'auto.offset.reset': 'earliest' });
      await subscribe(base, [topic]);
      const wrong = await client.call<ErrorBody>(`${base}/records`, {
        accept: accept === JSON_TYPE ? BINARY_TYPE : JSON_TYPE,
      });
      assert.equal(wrong.status, 406);
      assert.equal(wrong.body.error_code, 40601);
      const records = await client.pollUntil(base, accept, 4);
      return records;
    };

    const binary = await read('binary', BINARY_TYPE);
    assert.equal(binary[0].value, b64(JSON.stringify({ items: ['x', 2, null] })));
    assert.equal(binary[1].key, b64('\u0000bin'));
    assert.equal(binary[1].value, b64('\u0001\u0002payload'));
    assert.equal(binary[3].value, null);
    assert.equal(binary[3].key, null);
    const headers = binary[0].headers!;
    assert.deepEqual(
      headers.find((h) => h.key === 'h'),
      { key: 'h', value: b64('one') },
    );
    assert.ok(headers.some((h) => h.key === 'traceparent'));

    const json = await read('json', JSON_TYPE);
    assert.deepEqual(json[0].key, { id: 1 });
    assert.deepEqual(json[0].value, { items: ['x', 2, null] });

    const text = await read('text', TEXT_TYPE);
    assert.equal(text[0].value, JSON.stringify({ items: ['x', 2, null] }));
    assert.equal(text[2].key, 'text-key');
    assert.equal(text[2].value, 'hello text');
    assert.equal(text[3].value, null);
  });

  it('hands uncommitted records to a second instance of the group once the first is deleted', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-takeover'), 2);
    const group = uniqueName('pull-takeover-group');
    const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
    await produce(
      topic,
      TEXT_TYPE,
      values.map((value, i) => ({ value, partition: i % 2 })),
    );
    const first = await createInstance(group, {
      format: 'text',
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
    });
    await subscribe(first, [topic]);
    const firstRecords = await client.pollUntil(first, TEXT_TYPE, 20);
    assert.equal(firstRecords.length, 20);
    // Commit only the first 3 records of each partition; the rest stay uncommitted.
    const commit = await client.call(`${first}/offsets`, {
      body: {
        offsets: [
          { topic, partition: 0, offset: 3 },
          { topic, partition: 1, offset: 3 },
        ],
      },
    });
    assert.equal(commit.status, 204);
    assert.equal((await client.call(first, { method: 'DELETE' })).status, 204);

    const second = await createInstance(group, { format: 'text', 'auto.offset.reset': 'latest' });
    await subscribe(second, [topic]);
    const secondRecords = await client.pollUntil(second, TEXT_TYPE, 14);
    const expected = values.filter((_, i) => Math.floor(i / 2) >= 3);
    assert.deepEqual(secondRecords.map((r) => r.value).sort(), [...expected].sort());
    assert.deepEqual(
      secondRecords.filter((r) => r.partition === 0).map((r) => r.offset),
      [3, 4, 5, 6, 7, 8, 9],
    );
    // Nothing more than those.
    const more = await client.call<PolledRecord[]>(`${second}/records?timeout=300`, { accept: TEXT_TYPE });
    assert.deepEqual(more.body, []);
  });

  it('answers invalid requests with Strimzi-style statuses and error codes', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-errors'), 1);
    const group = uniqueName('pull-errors-group');
    const unknownProperty = await client.call<ErrorBody>(`/consumers/${group}`, { body: { nmae: 'x' } });
    assert.equal(unknownProperty.status, 400);
    const invalid = await client.call<ErrorBody & { validation_errors: { path: string }[] }>(
      `/consumers/${group}`,
      { body: { format: 'avro', 'auto.offset.reset': 'sometimes' } },
    );
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.error_code, 42201);
    assert.ok(invalid.body.validation_errors.some((e) => e.path === '/format'));

    const base = await createInstance(group, { name: 'dup' });
    const duplicate = await client.call<ErrorBody>(`/consumers/${group}`, { body: { name: 'dup' } });
    assert.equal(duplicate.status, 409);
    assert.equal(duplicate.body.error_code, 40901);

    const generated = await client.call<Created>(`/consumers/${group}`, { method: 'POST' });
    assert.equal(generated.status, 200);
    assert.match(generated.body.instance_id, /^mesh-bridge-consumer-[0-9a-f-]{36}$/);
    cleanup.defer(() => client.call(generated.body.base_uri, { method: 'DELETE' }));

    const both = await client.call<ErrorBody>(`${base}/subscription`, {
      body: { topics: [topic], topic_pattern: 'pull-.*' },
    });
    assert.equal(both.status, 409);
    assert.equal(both.body.error_code, 40902);
    const neither = await client.call<ErrorBody>(`${base}/subscription`, { body: {} });
    assert.equal(neither.status, 422);
    const unknownTopic = await client.call<ErrorBody>(`${base}/subscription`, {
      body: { topics: [uniqueName('no-such-topic')] },
    });
    assert.equal(unknownTopic.status, 404);
    assert.equal(unknownTopic.body.error_code, 40401);

    const notSubscribed = await client.call<ErrorBody>(`${base}/records`, { accept: BINARY_TYPE });
    assert.equal(notSubscribed.status, 409);
    assert.equal(notSubscribed.body.error_code, 40904);

    const wrongType = await client.call<ErrorBody>(`${base}/subscription`, {
      contentType: 'text/plain',
      body: { topics: [topic] },
    });
    assert.equal(wrongType.status, 415);

    await subscribe(base, [topic]);
    const conflict = await client.call<ErrorBody>(`${base}/assignments`, {
      body: { partitions: [{ topic, partition: 0 }] },
    });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error_code, 40902);

    const missing = await client.call<ErrorBody>(`/consumers/${group}/instances/nobody/records`, {
      accept: BINARY_TYPE,
    });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error_code, 40403);
  });

  it('honours max_bytes: fewer records per poll, 422 when the next record alone is larger', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-maxbytes'), 1);
    await produce(
      topic,
      TEXT_TYPE,
      ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc'].map((value) => ({ value })),
    );
    const base = await createInstance(uniqueName('pull-mb'), {
      format: 'text',
      'auto.offset.reset': 'earliest',
    });
    await subscribe(base, [topic]);
    const tooSmall = await waitFor(
      async () => {
        const answer = await client.call<ErrorBody>(`${base}/records?timeout=500&max_bytes=5`, {
          accept: TEXT_TYPE,
        });
        return answer.status === 422 ? answer : undefined;
      },
      { what: 'a 422 for a record over max_bytes' },
    );
    assert.equal(tooSmall.body.error_code, 42201);
    const first = await client.call<PolledRecord[]>(`${base}/records?max_bytes=25`, { accept: TEXT_TYPE });
    assert.deepEqual(
      first.body.map((r) => r.value),
      ['aaaaaaaaaa', 'bbbbbbbbbb'],
    );
    const rest = await client.pollUntil(base, TEXT_TYPE, 1);
    assert.deepEqual(
      rest.map((r) => r.value),
      ['cccccccccc'],
    );
  });

  it('builds base_uri from Forwarded and X-Forwarded-* headers', async () => {
    await startBridge();
    const group = uniqueName('pull-fwd');
    const forwarded = await client.call<Created>(`/consumers/${group}`, {
      body: { name: 'f1' },
      headers: { forwarded: 'for=10.0.0.1;proto=https;host="bridge.example:8443", for=10.0.0.2' },
    });
    assert.equal(forwarded.body.base_uri, `https://bridge.example:8443/consumers/${group}/instances/f1`);
    cleanup.defer(() => client.call(`/consumers/${group}/instances/f1`, { method: 'DELETE' }));
    const xForwarded = await client.call<Created>(`/consumers/${group}`, {
      body: { name: 'f2' },
      headers: {
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'suite.kafka.example',
        'x-forwarded-prefix': '/bridge/',
      },
    });
    assert.equal(
      xForwarded.body.base_uri,
      `https://suite.kafka.example/bridge/consumers/${group}/instances/f2`,
    );
    cleanup.defer(() => client.call(`/consumers/${group}/instances/f2`, { method: 'DELETE' }));
  });

  it('seeks to an offset, the beginning and the end', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-seek'), 1);
    await produce(
      topic,
      TEXT_TYPE,
      Array.from({ length: 10 }, (_, i) => ({ value: `r${i}` })),
    );
    const base = await createInstance(uniqueName('pull-seek-group'), {
      format: 'text',
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
    });
    await subscribe(base, [topic]);
    const all = await client.pollUntil(base, TEXT_TYPE, 10);
    assert.equal(all.length, 10);

    const toOffset = await client.call(`${base}/positions`, {
      body: { offsets: [{ topic, partition: 0, offset: 7 }] },
    });
    assert.equal(toOffset.status, 204);
    assert.deepEqual(
      (await client.pollUntil(base, TEXT_TYPE, 3)).map((r) => r.offset),
      [7, 8, 9],
    );

    const toBeginning = await client.call(`${base}/positions/beginning`, {
      body: { partitions: [{ topic, partition: 0 }] },
    });
    assert.equal(toBeginning.status, 204);
    const again = await client.pollUntil(base, TEXT_TYPE, 10);
    assert.deepEqual(
      again.map((r) => r.offset),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );

    await client.call(`${base}/positions`, { body: { offsets: [{ topic, partition: 0, offset: 2 }] } });
    const toEnd = await client.call(`${base}/positions/end`, {
      body: { partitions: [{ topic, partition: 0 }] },
    });
    assert.equal(toEnd.status, 204);
    await produce(topic, TEXT_TYPE, [{ value: 'after-end' }]);
    const afterEnd = await client.pollUntil(base, TEXT_TYPE, 1);
    assert.deepEqual(
      afterEnd.map((r) => [r.offset, r.value]),
      [[10, 'after-end']],
    );

    const unassigned = await client.call<ErrorBody>(`${base}/positions`, {
      body: { offsets: [{ topic, partition: 5, offset: 0 }] },
    });
    assert.equal(unassigned.status, 409);
    assert.equal(unassigned.body.error_code, 40904);
  });

  it('reads explicitly assigned partitions without group management, from the group’s committed offsets', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-assign'), 3);
    const group = uniqueName('pull-assign-group');
    await produce(
      topic,
      TEXT_TYPE,
      Array.from({ length: 12 }, (_, i) => ({ value: `p${i % 3}-${Math.floor(i / 3)}`, partition: i % 3 })),
    );
    const admin = await suite.kafka.admin();
    await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 1, offset: '2' }] });

    const base = await createInstance(group, {
      format: 'text',
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
    });
    const assigned = await client.call(`${base}/assignments`, {
      body: {
        partitions: [
          { topic, partition: 1 },
          { topic, partition: 2 },
        ],
      },
    });
    assert.equal(assigned.status, 204, JSON.stringify(assigned.body));
    const listed = await client.call<{ partitions: unknown[] }>(`${base}/assignments`);
    assert.deepEqual(listed.body.partitions, [
      { topic, partition: 1 },
      { topic, partition: 2 },
    ]);
    const records = await client.pollUntil(base, TEXT_TYPE, 6);
    assert.deepEqual(records.map((r) => r.value).sort(), ['p1-2', 'p1-3', 'p2-0', 'p2-1', 'p2-2', 'p2-3']);

    const conflict = await client.call<ErrorBody>(`${base}/subscription`, { body: { topics: [topic] } });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error_code, 40902);

    assert.equal((await client.call(`${base}/offsets`, { method: 'POST' })).status, 204);
    assert.deepEqual(await committed(group, topic), { 0: -1, 1: 4, 2: 4 });

    const end = await client.call(`${base}/positions/end`, {
      body: { partitions: [{ topic, partition: 1 }] },
    });
    assert.equal(end.status, 204);
  });

  it('closes an idle instance, which answers 40403 afterwards', async () => {
    await startBridge({ consumerIdleTimeoutMs: 300 });
    const group = uniqueName('pull-idle');
    const created = await client.call<Created>(`/consumers/${group}`, { body: { name: 'sleepy' } });
    assert.equal(created.status, 200);
    await waitFor(
      async () => (await client.call(`${created.body.base_uri}/subscription`)).status === 404,
      // Probing touches the instance too: probe less often than the idle timeout.
      { timeoutMs: 10_000, intervalMs: 1_000, what: 'the idle instance to be removed' },
    );
    const answer = await client.call<ErrorBody>(`${created.body.base_uri}/records`, { accept: BINARY_TYPE });
    assert.equal(answer.status, 404);
    assert.equal(answer.body.error_code, 40403);
    // The name is free again.
    const again = await client.call<Created>(`/consumers/${group}`, { body: { name: 'sleepy' } });
    assert.equal(again.status, 200);
  });

  it('bug: an instance deleted while its group join is in progress left a kafkajs consumer running', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-zombie'), 1);
    const group = uniqueName('pull-zombie-group');
    for (let i = 0; i < 3; i += 1) {
      const created = await client.call<Created>(`/consumers/${group}`, { body: { name: `z${i}` } });
      await subscribe(created.body.base_uri, [topic]);
      // At once, while kafkajs is still joining the group.
      assert.equal((await client.call(created.body.base_uri, { method: 'DELETE' })).status, 204);
    }
    // A left-over member would hold the only partition: the next instance would never get records.
    const base = await createInstance(group, { format: 'text', 'auto.offset.reset': 'earliest' });
    await subscribe(base, [topic]);
    await produce(topic, TEXT_TYPE, [{ value: 'reaches the live instance' }]);
    const records = await client.pollUntil(base, TEXT_TYPE, 1, { timeoutMs: 15_000 });
    assert.equal(records[0].value, 'reaches the live instance');
    const admin = await suite.kafka.admin();
    const {
      groups: [description],
    } = await admin.describeGroups([group]);
    assert.equal(description.members.length, 1);
  });

  it('answers 429 over bridge.maxConsumers', async () => {
    await startBridge({ maxConsumers: 2 });
    const group = uniqueName('pull-max');
    await createInstance(group);
    const second = await createInstance(group);
    const third = await client.call<ErrorBody>(`/consumers/${group}`, { method: 'POST' });
    assert.equal(third.status, 429);
    assert.equal(third.body.error_code, 42901);
    assert.equal(third.headers['retry-after'], '1');
    assert.equal((await client.call(second, { method: 'DELETE' })).status, 204);
    const fourth = await client.call<Created>(`/consumers/${group}`, { method: 'POST' });
    assert.equal(fourth.status, 200);
    cleanup.defer(() => client.call(fourth.body.base_uri, { method: 'DELETE' }));
  });

  it('commits what an auto-commit instance handed out when the bridge drains', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-drain'), 1);
    const group = uniqueName('pull-drain-group');
    await produce(
      topic,
      TEXT_TYPE,
      Array.from({ length: 5 }, (_, i) => ({ value: `d${i}` })),
    );
    const base = await createInstance(group, { format: 'text', 'auto.offset.reset': 'earliest' });
    await subscribe(base, [topic]);
    await client.pollUntil(base, TEXT_TYPE, 5);
    await bridge.drain();
    assert.deepEqual(await committed(group, topic), { 0: 5 });
  });

  it('answers a waiting long poll at once when the bridge drains', async function () {
    // A poll waiting its full timeout would outlast this test's own timeout.
    this.timeout(30_000);
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-drain-poll'), 1);
    const base = await createInstance(uniqueName('pull-drain-poll-group'), {
      format: 'text',
      'consumer.request.timeout.ms': 120_000,
    });
    await subscribe(base, [topic]);
    const polling = client.call<PolledRecord[]>(`${base}/records?timeout=120000`, { accept: TEXT_TYPE });
    // The listener's in-flight count (not public on the component) says the poll has arrived.
    const listener = (bridge as unknown as { listener: { inFlightRequests: number } }).listener;
    await waitFor(() => listener.inFlightRequests > 0, { what: 'the poll to arrive' });
    const [answer] = await Promise.all([polling, bridge.drain()]);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, []);
  });

  it('continues each polled record’s trace in a CONSUMER span', async () => {
    await startBridge();
    const topic = await suite.kafka.createTopic(uniqueName('pull-trace'), 1);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const answer = await client.call(`/topics/${topic}`, {
      contentType: TEXT_TYPE,
      body: { records: [{ value: 'traced' }] },
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    assert.equal(answer.status, 200);
    const base = await createInstance(uniqueName('pull-trace-group'), {
      format: 'text',
      'auto.offset.reset': 'earliest',
    });
    await subscribe(base, [topic]);
    const [record] = await client.pollUntil(base, TEXT_TYPE, 1);
    const traceparent = Buffer.from(
      record.headers!.find((h) => h.key === 'traceparent')!.value,
      'base64',
    ).toString();
    const producerSpanId = traceparent.split('-')[2];

    const span = await waitFor(
      async () => {
        await telemetry.forceFlush();
        return telemetry
          .memoryExporter!.getFinishedSpans()
          .find((s) => s.kind === SpanKind.CONSUMER && s.name === `receive ${topic}`);
      },
      { what: 'the CONSUMER span' },
    );
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanContext?.spanId, producerSpanId);
    assert.equal(span.attributes['messaging.destination.name'], topic);
    assert.equal(span.attributes['messaging.kafka.offset'], 0);
    assert.equal(span.links.length, 1);
  });
});

import assert from 'node:assert/strict';
import type { Producer, ProducerRecord, RecordMetadata } from 'kafkajs';
import { MeshError } from '../../services/runtime/errors.js';
import { TopicSender } from './topic-sender.js';

/** A producer whose sends the test answers by hand, to observe cycles, batching and ordering. */
class ManualProducer {
  readonly sends: {
    record: ProducerRecord;
    resolve: (baseByPartition: Record<number, number>) => void;
    reject: (err: Error) => void;
  }[] = [];
  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return new Promise((resolve, reject) => {
      this.sends.push({
        record,
        resolve: (bases) =>
          resolve(
            Object.entries(bases).map(([partition, base]) => ({
              topicName: record.topic,
              partition: Number(partition),
              errorCode: 0,
              baseOffset: String(base),
            })),
          ),
        reject,
      });
    });
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
async function waitForSends(producer: ManualProducer, count: number): Promise<void> {
  for (let i = 0; i < 200 && producer.sends.length < count; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  assert.equal(producer.sends.length, count);
}
const record = (value: string, partition = 0) => ({ message: { value }, partition, bytes: value.length });
const values = (send: { record: ProducerRecord }) =>
  send.record.messages.map((m) => `${String(m.value)}@${m.partition}`);

function topicSender(
  producer: ManualProducer,
  options: {
    maxBatchRecords?: number;
    maxBatchBytes?: number;
    leaders?: Record<number, number>;
    retriable?: boolean;
    onLeadersChanged?: () => void;
  } = {},
) {
  return new TopicSender({
    producer: producer as unknown as Producer,
    topic: 't',
    compression: 0,
    maxBatchRecords: options.maxBatchRecords ?? 100,
    maxBatchBytes: options.maxBatchBytes ?? 1_000_000,
    leaderOf: (partition) => options.leaders?.[partition] ?? 1,
    classifyError: (err) => new MeshError('MESH_KAFKA_UNAVAILABLE', (err as Error).message),
    isRetriable: () => options.retriable ?? false,
    retryBackoffMs: { initial: 1, max: 5 },
    ...(options.onLeadersChanged ? { leadersChanged: options.onLeadersChanged } : {}),
  });
}

describe('TopicSender', () => {
  it('runs one produce cycle at a time and sends what arrived meanwhile together, in order', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer);
    const never = new AbortController().signal;
    const first = sender.send([record('a', 0)], never);
    const second = sender.send([record('b', 1), record('c', 0)], never);
    const third = sender.send([record('d', 0)], never);
    await settle();
    assert.equal(producer.sends.length, 1, 'only the first cycle is in flight');
    assert.deepEqual(values(producer.sends[0]), ['a@0']);
    producer.sends[0].resolve({ 0: 10 });
    await settle();
    assert.equal(producer.sends.length, 2);
    assert.deepEqual(values(producer.sends[1]), ['b@1', 'c@0', 'd@0']);
    producer.sends[1].resolve({ 0: 11, 1: 3 });
    assert.deepEqual(await first.answers, [{ partition: 0, offset: 10 }]);
    assert.deepEqual(await second.answers, [
      { partition: 1, offset: 3 },
      { partition: 0, offset: 11 },
    ]);
    assert.deepEqual(await third.final, [{ partition: 0, offset: 12 }]);
  });

  it('sends one request per leader broker, so a broker failure fails only its own records', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer, { leaders: { 0: 1, 1: 2 } });
    const sent = sender.send([record('a', 0), record('b', 1), record('c', 0)], new AbortController().signal);
    await settle();
    assert.equal(producer.sends.length, 2);
    const toBroker1 = producer.sends.find((s) => values(s).includes('a@0'))!;
    const toBroker2 = producer.sends.find((s) => values(s).includes('b@1'))!;
    assert.deepEqual(values(toBroker1), ['a@0', 'c@0']);
    toBroker1.resolve({ 0: 5 });
    toBroker2.reject(new Error('broker 2 gone'));
    const outcomes = await sent.answers;
    assert.deepEqual(outcomes[0], { partition: 0, offset: 5 });
    assert.equal((outcomes[1] as { error: MeshError }).error.message, 'broker 2 gone');
    assert.deepEqual(outcomes[2], { partition: 0, offset: 6 });
  });

  it('splits a partition at the record and byte limits, keeping its order', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer, { maxBatchRecords: 2, maxBatchBytes: 5 });
    const never = new AbortController().signal;
    void sender.send([record('xx', 0)], never);
    void sender.send(
      [record('aa', 0), record('bb', 0), record('zz', 1), record('cc', 0), record('dddd', 1)],
      never,
    );
    await settle();
    producer.sends[0].resolve({ 0: 0 });
    await settle();
    assert.deepEqual(values(producer.sends[1]), ['aa@0', 'bb@0', 'zz@1']);
    producer.sends[1].resolve({ 0: 1, 1: 0 });
    await settle();
    assert.deepEqual(values(producer.sends[2]), ['cc@0', 'dddd@1']);
  });

  it('at the deadline withdraws queued records and reports in-flight ones as unknown until Kafka answers', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer);
    const deadline = new AbortController();
    const inFlight = sender.send([record('a')], deadline.signal);
    const queued = sender.send([record('b')], deadline.signal);
    await settle();
    deadline.abort();
    const [answer] = await inFlight.answers;
    assert.match((answer as { error: MeshError }).error.message, /may or may not have been written/);
    const [withdrawn] = await queued.final;
    assert.match((withdrawn as { error: MeshError }).error.message, /not sent/);
    producer.sends[0].resolve({ 0: 7 });
    assert.deepEqual(await inFlight.final, [{ partition: 0, offset: 7 }], 'the real outcome arrives later');
    await sender.whenIdle();
    assert.equal(producer.sends.length, 1, 'the withdrawn record was never sent');
  });

  it('fails every record of a request the producer refuses, and goes on with the next cycle', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer);
    const never = new AbortController().signal;
    const failing = sender.send([record('a'), record('b')], never);
    const next = sender.send([record('c')], never);
    await settle();
    producer.sends[0].reject(new Error('broker gone'));
    const outcomes = await failing.answers;
    assert.deepEqual(
      outcomes.map((o) => ('error' in o ? o.error.message : o.offset)),
      ['broker gone', 'broker gone'],
    );
    await settle();
    producer.sends[1].resolve({ 0: 5 });
    assert.deepEqual(await next.answers, [{ partition: 0, offset: 5 }]);
  });

  it('after a retriable failure sends the same records again, one partition per request, until acknowledged', async () => {
    const producer = new ManualProducer();
    let leadersChanged = 0;
    const sender = topicSender(producer, { retriable: true, onLeadersChanged: () => (leadersChanged += 1) });
    const sent = sender.send([record('a', 0), record('b', 1), record('c', 0)], new AbortController().signal);
    await settle();
    assert.deepEqual(values(producer.sends[0]), ['a@0', 'b@1', 'c@0'], 'one request for the leader');
    producer.sends[0].reject(new Error('leader moved'));
    await waitForSends(producer, 3);
    assert.equal(leadersChanged, 1);
    assert.deepEqual(producer.sends.slice(1).map(values), [['a@0', 'c@0'], ['b@1']], 'the very same records');
    producer.sends[1].resolve({ 0: 40 });
    producer.sends[2].reject(new Error('still electing'));
    await waitForSends(producer, 4);
    assert.deepEqual(values(producer.sends[3]), ['b@1']);
    producer.sends[3].resolve({ 1: 7 });
    assert.deepEqual(await sent.answers, [
      { partition: 0, offset: 40 },
      { partition: 1, offset: 7 },
      { partition: 0, offset: 41 },
    ]);
    // For a while after a failure, sends stay one partition per request.
    const next = sender.send([record('d', 0), record('e', 1)], new AbortController().signal);
    await waitForSends(producer, 6);
    assert.deepEqual(producer.sends.slice(4).map(values), [['d@0'], ['e@1']]);
    producer.sends[4].resolve({ 0: 42 });
    producer.sends[5].resolve({ 1: 8 });
    assert.equal((await next.answers).length, 2);
  });

  it('stops retrying once every record of the send is past its deadline', async () => {
    const producer = new ManualProducer();
    const sender = topicSender(producer, { retriable: true });
    const deadline = new AbortController();
    const sent = sender.send([record('a')], deadline.signal);
    await settle();
    producer.sends[0].reject(new Error('broker gone'));
    await waitForSends(producer, 2);
    deadline.abort();
    const [answer] = await sent.answers;
    assert.match((answer as { error: MeshError }).error.message, /may or may not have been written/);
    producer.sends[1].reject(new Error('broker gone'));
    const [final] = await sent.final;
    assert.equal((final as { error: MeshError }).error.message, 'broker gone');
    await sender.whenIdle();
    assert.equal(producer.sends.length, 2, 'no send after the deadline');
  });
});

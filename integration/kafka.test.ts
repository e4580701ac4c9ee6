import assert from 'node:assert/strict';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { KafkaTestContext, uniqueName } from './helpers/kafka.js';
import { waitFor } from './helpers/wait.js';

interface ConsumedRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string | string[]>;
}

/** kafkajs hands header values back as Buffers, and repeated keys as arrays of them. */
function decodeHeaders(headers: IHeaders | undefined): Record<string, string | string[]> {
  const decoded: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    decoded[name] = Array.isArray(value) ? value.map((item) => item.toString()) : value.toString();
  }
  return decoded;
}

function toConsumedRecord(partition: number, message: KafkaMessage): ConsumedRecord {
  return {
    partition,
    offset: message.offset,
    key: message.key?.toString() ?? null,
    value: message.value?.toString() ?? null,
    headers: decodeHeaders(message.headers),
  };
}

describe('Kafka (real broker)', function () {
  let kafka: KafkaTestContext;

  before(async function () {
    kafka = await KafkaTestContext.create();
  });

  afterEach(async function () {
    await kafka?.cleanup();
  });

  after(async function () {
    await kafka?.close();
  });

  it('round-trips keyed records with headers through a 3-partition topic', async function () {
    const topic = await kafka.createTopic(uniqueName('orders'), 3);

    const admin = await kafka.admin();
    const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    assert.deepEqual(metadata?.partitions.map((partition) => partition.partitionId).sort(), [0, 1, 2]);

    // Keyed records without an explicit partition land where Java clients would put them:
    // toPositive(murmur2(key)) % 3, computed with org.apache.kafka.common.utils.Utils 3.9.1.
    const expectedPartitionByKey: Record<string, number> = { eta: 0, alpha: 1, gamma: 1, beta: 2, delta: 2 };
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'alpha', value: 'alpha-1', headers: { 'trace-id': 't-1', tag: ['red', 'blue'] } },
        { key: 'beta', value: 'beta-1', headers: { 'trace-id': 't-2' } },
        { key: 'alpha', value: 'alpha-2', headers: { 'trace-id': 't-3' } },
        { key: 'eta', value: 'eta-1', headers: { 'trace-id': 't-4' } },
        { key: 'gamma', value: 'gamma-1' },
        { key: 'delta', value: 'delta-1', headers: { 'content-type': 'application/json' } },
        // An explicit partition overrides the key hash.
        { key: 'alpha', value: 'alpha-pinned', partition: 2, headers: { pinned: 'yes' } },
        { key: null, value: 'no-key', partition: 0 },
      ],
    });

    const consumed: ConsumedRecord[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName('it-group') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        consumed.push(toConsumedRecord(partition, message));
        return Promise.resolve();
      },
    });
    await waitFor(() => consumed.length >= 8, { timeoutMs: 30_000, what: '8 consumed records' });

    const byPartitionThenOffset = (a: ConsumedRecord, b: ConsumedRecord) =>
      a.partition - b.partition || Number(a.offset) - Number(b.offset);
    assert.deepEqual(consumed.sort(byPartitionThenOffset), [
      { partition: 0, offset: '0', key: 'eta', value: 'eta-1', headers: { 'trace-id': 't-4' } },
      { partition: 0, offset: '1', key: null, value: 'no-key', headers: {} },
      {
        partition: 1,
        offset: '0',
        key: 'alpha',
        value: 'alpha-1',
        headers: { 'trace-id': 't-1', tag: ['red', 'blue'] },
      },
      { partition: 1, offset: '1', key: 'alpha', value: 'alpha-2', headers: { 'trace-id': 't-3' } },
      { partition: 1, offset: '2', key: 'gamma', value: 'gamma-1', headers: {} },
      { partition: 2, offset: '0', key: 'beta', value: 'beta-1', headers: { 'trace-id': 't-2' } },
      {
        partition: 2,
        offset: '1',
        key: 'delta',
        value: 'delta-1',
        headers: { 'content-type': 'application/json' },
      },
      { partition: 2, offset: '2', key: 'alpha', value: 'alpha-pinned', headers: { pinned: 'yes' } },
    ]);
    for (const record of consumed) {
      if (record.key !== null && record.value !== 'alpha-pinned') {
        assert.equal(record.partition, expectedPartitionByKey[record.key], `partition of key ${record.key}`);
      }
    }
  });

  it('deletes the topics it created on cleanup', async function () {
    const topic = await kafka.createTopic(uniqueName('ephemeral'), 2);
    assert.equal(await kafka.topicExists(topic), true);

    await kafka.deleteCreatedTopics();

    assert.equal(await kafka.topicExists(topic), false);
    // Nothing is left to delete, so a second cleanup is a no-op rather than an error.
    await kafka.deleteCreatedTopics();
  });
});

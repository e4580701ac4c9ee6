import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { request } from 'undici';
import { startLocalKafka, type LocalKafka } from '../scripts/kafka/local-kafka.js';
import { freePort } from '../scripts/lib/ports.js';
import { uniqueName } from './helpers/kafka.js';
import { startTestBridge } from './helpers/bridge.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

type Offsets = { offsets: { partition?: number; offset?: number; error_code?: number; message?: string }[] };

// A broker of its own: this suite stops and restarts it, which the shared test broker must not see.
describe('bridge produce across a broker outage (dedicated real broker)', function () {
  this.timeout(180_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('answers 503 for unacknowledged records while Kafka is down; a retry with the same Idempotency-Key writes each record once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'bridge-outage-'));
    cleanup.defer(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const controllerPort = await freePort();
    let broker: LocalKafka = await startLocalKafka({ port, controllerPort, dataDir });
    cleanup.defer(() => broker.stop());

    const client = new Kafka({
      clientId: 'outage-test',
      brokers: [broker.bootstrap],
      logLevel: logLevel.NOTHING,
    });
    const admin = client.admin();
    await admin.connect();
    cleanup.defer(() => admin.disconnect());
    const topic = uniqueName('bridge-outage');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });

    const { bridge } = await startTestBridge(cleanup, {
      brokers: [broker.bootstrap],
      bridge: { deliveryTimeoutMs: 6_000, producer: { retries: 2 } },
    });

    const produce = async (values: string[], key?: string) => {
      const res = await request(`${bridge.url}/topics/${topic}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/vnd.kafka.text.v2+json',
          ...(key ? { 'idempotency-key': key } : {}),
        },
        body: JSON.stringify({ records: values.map((value, i) => ({ key: `k${i}`, value })) }),
      });
      return { status: res.statusCode, body: (await res.body.json()) as Offsets };
    };

    const before = await produce(['before-1', 'before-2', 'before-3']);
    assert.equal(before.status, 200);

    await broker.stop();
    const during = ['during-1', 'during-2', 'during-3', 'during-4'];
    const refused = await produce(during, 'retry-me');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.offsets.length, 4);
    const acknowledged = refused.body.offsets.filter((entry) => entry.offset !== undefined).length;
    for (const entry of refused.body.offsets.filter((e) => e.offset === undefined)) {
      assert.equal(entry.error_code, 50301);
    }

    broker = await startLocalKafka({ port, controllerPort, dataDir });
    const retried = await waitFor(
      async () => {
        const answer = await produce(during, 'retry-me');
        return answer.status === 200 ? answer : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the retried request to succeed' },
    );
    assert.ok(retried.body.offsets.every((entry) => typeof entry.offset === 'number'));

    // Exactly the seven records, each once, read by an independent consumer.
    const consumer = client.consumer({ groupId: uniqueName('outage-read'), maxWaitTimeInMs: 250 });
    await consumer.connect();
    cleanup.defer(() => consumer.disconnect());
    await consumer.subscribe({ topic, fromBeginning: true });
    const values: string[] = [];
    await consumer.run({
      eachMessage: ({ message }) => {
        values.push(message.value!.toString());
        return Promise.resolve();
      },
    });
    await waitFor(() => values.length >= 7, { timeoutMs: 30_000, what: 'seven records' });
    const offsets = await admin.fetchTopicOffsets(topic);
    const total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
    assert.equal(total, 7, `records in the topic (the 503 answer acknowledged ${acknowledged})`);
    assert.deepEqual([...values].sort(), ['before-1', 'before-2', 'before-3', ...during].sort());
    console.log(
      `      broker-outage: sent=${3 + during.length} (+${during.length} retried) acknowledged(200)=${3 + retried.body.offsets.length} ` +
        `refused(503)=${during.length - acknowledged} acknowledged-in-503=${acknowledged} in topic=${total} distinct=${new Set(values).size}`,
    );
  });
});

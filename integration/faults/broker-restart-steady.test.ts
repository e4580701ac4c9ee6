/**
 * The broker is stopped and restarted while the app produces through the bridge at a steady rate.
 * Accounting: every record answered 200 is in the topic exactly once; every other answer is 503 or
 * 429; nothing in the topic was never sent, and nothing is there twice.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { startLocalKafka, type LocalKafka } from '../../scripts/kafka/local-kafka.js';
import { freePort } from '../../scripts/lib/ports.js';
import { KafkaTestContext, uniqueName } from '../helpers/kafka.js';
import { startTestBridge } from '../helpers/bridge.js';
import { CleanupStack, waitFor } from '../helpers/wait.js';

/** Requests per second the app sends (one record each), spread over WORKERS loops. */
const RATE = 100;
const WORKERS = 8;

describe('faults: broker stopped and restarted under steady produce load (dedicated real broker)', function () {
  this.timeout(180_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('keeps every acknowledged record exactly once and refuses the rest with 503 or 429', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'broker-restart-'));
    cleanup.defer(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const controllerPort = await freePort();
    let broker: LocalKafka = await startLocalKafka({ port, controllerPort, dataDir });
    cleanup.defer(() => broker.stop());

    const kafka = KafkaTestContext.forBrokers([broker.bootstrap]);
    cleanup.defer(() => kafka.close());
    const topic = uniqueName('broker-restart');
    await kafka.createTopic(topic, 3);

    const { bridge } = await startTestBridge(cleanup, {
      brokers: [broker.bootstrap],
      bridge: { deliveryTimeoutMs: 3_000, producer: { retries: 2 } },
    });

    const acknowledged = new Set<string>();
    const refused = new Map<string, number>();
    let sent = 0;
    let running = true;
    // Each worker sends one record, then waits out the rest of its slot: a steady rate while Kafka
    // answers, and one request in flight per worker while it does not.
    const slotMs = (1000 * WORKERS) / RATE;
    const worker = async (id: number) => {
      for (let n = 0; running; n++) {
        const started = Date.now();
        const value = `w${id}-${n}`;
        sent++;
        const res = await request(`${bridge.url}/topics/${topic}`, {
          method: 'POST',
          headers: { 'content-type': 'application/vnd.kafka.text.v2+json' },
          body: JSON.stringify({ records: [{ key: `k${n % 16}`, value }] }),
        });
        await res.body.dump();
        if (res.statusCode === 200) acknowledged.add(value);
        else refused.set(value, res.statusCode);
        await sleep(Math.max(0, slotMs - (Date.now() - started)));
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, id) => worker(id));
    cleanup.defer(async () => {
      running = false;
      await Promise.allSettled(workers);
    });

    await waitFor(() => acknowledged.size >= 100, { timeoutMs: 30_000, what: '100 records acknowledged' });
    await broker.stop();
    await waitFor(() => refused.size >= WORKERS, {
      timeoutMs: 30_000,
      what: 'records refused while the broker is down',
    });
    const acknowledgedBeforeRestart = acknowledged.size;
    broker = await startLocalKafka({ port, controllerPort, dataDir });
    await waitFor(() => acknowledged.size >= acknowledgedBeforeRestart + 100, {
      timeoutMs: 90_000,
      what: '100 more records acknowledged after the restart',
    });
    running = false;
    await Promise.all(workers);

    const total = await kafka.recordCount(topic);
    const inTopic = (await kafka.readTopic(topic, total, { timeoutMs: 60_000 })).map((message) =>
      message.value!.toString(),
    );
    const counts = new Map<string, number>();
    for (const value of inTopic) counts.set(value, (counts.get(value) ?? 0) + 1);
    const duplicates = [...counts.values()].filter((count) => count > 1).length;
    const lost = [...acknowledged].filter((value) => !counts.has(value));
    const refusedInTopic = [...refused.keys()].filter((value) => counts.has(value)).length;
    const statuses = [...new Set(refused.values())].sort();
    console.log(
      `      broker-restart: sent=${sent} acknowledged(200)=${acknowledged.size} refused=${refused.size} ` +
        `(statuses ${statuses.join('/')}) in topic=${inTopic.length} lost=${lost.length} duplicates=${duplicates} ` +
        `refused-but-written=${refusedInTopic}`,
    );
    assert.equal(sent, acknowledged.size + refused.size, 'every request got an answer');
    assert.deepEqual(lost, [], 'acknowledged records missing from the topic');
    assert.equal(duplicates, 0, 'records written twice');
    for (const status of statuses) assert.ok(status === 503 || status === 429, `refused with ${status}`);
    for (const value of counts.keys())
      assert.ok(acknowledged.has(value) || refused.has(value), `unsent ${value}`);
  });
});

/**
 * Broker failover without loss (issue 11), on a three-node KRaft cluster of the test's own
 * (replication factor 3, min.insync.replicas 2): the app produces through the bridge of a real
 * sidecar process at a steady rate while a push subscription of the same sidecar delivers the
 * records to it; the partition leader's broker is SIGKILLed mid-stream and started again. Then
 * every record the bridge acknowledged is in the topic exactly once, at the offset the bridge
 * answered, and was delivered to the app at least once.
 *
 * KAFKA_FAILOVER_RECORDS (default 20,000) and KAFKA_FAILOVER_RATE (records per second, default
 * 1,000) size the run; the defaults take about a minute on a 2-core machine.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startKafkaCluster, type KafkaCluster } from '../scripts/kafka/cluster.js';
import { JSON_TYPE } from './helpers/bridge-client.js';
import { startEventSink } from './helpers/event-sink.js';
import { KafkaTestContext, uniqueName } from './helpers/kafka.js';
import { startSidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

const RECORDS = Number(process.env['KAFKA_FAILOVER_RECORDS'] ?? 20_000);
const RATE = Number(process.env['KAFKA_FAILOVER_RATE'] ?? 1_000);
/** Records per produce request; requests start on a fixed schedule, whether earlier ones answered or not. */
const PER_REQUEST = 25;

interface ProduceAnswer {
  offsets?: ({ partition: number; offset: number } | { error_code: number; message: string })[];
}

describe('broker failover on a three-node cluster (sidecar process, own cluster)', function () {
  this.timeout(240_000);
  const cleanup = new CleanupStack();
  let cluster: KafkaCluster | undefined;
  let kafka: KafkaTestContext;

  before(async function () {
    this.timeout(120_000);
    cluster = await startKafkaCluster({ size: 3, minInsyncReplicas: 2 });
    kafka = KafkaTestContext.forBrokers(cluster.bootstrap);
  });

  afterEach(() => cleanup.run());

  after(async () => {
    await kafka?.close().catch(() => undefined);
    await cluster?.stop();
  });

  it(`loses no acknowledged record when the leader's broker is SIGKILLed and restarted (${RECORDS} records)`, async () => {
    const cluster_ = cluster!;
    const topic = uniqueName('failover');
    // Two partitions led by broker 1: the bridge sends both in one request until the failover,
    // after which their new leaders differ (the followers are listed in a different order).
    await cluster_.createTopic(topic, 2, { leader: 1 });
    const sink = await startEventSink();
    cleanup.defer(() => sink.close());
    const sidecar = await startSidecarProcess(
      {
        admin: { port: 0, host: '127.0.0.1' },
        ingress: { port: 0, host: '127.0.0.1', target: sink.url },
        egress: { enabled: false },
        bridge: { enabled: true, port: 0, deliveryTimeoutMs: 30_000 },
        kafka: { bootstrap: cluster_.bootstrap, healthCheckIntervalMs: 1_000 },
        subscriptions: [
          {
            name: 'failover',
            topics: [topic],
            group: uniqueName('failover-group'),
            path: '/events',
            autoOffsetReset: 'earliest',
            maxConcurrency: 4,
          },
        ],
        shutdown: { drainDelayMs: 0, timeoutMs: 15_000 },
        log: { level: 'info' },
      },
      { startTimeoutMs: 40_000 },
    );
    cleanup.defer(() => sidecar.cleanup());
    await waitFor(async () => (await request(`${sidecar.urls.admin}/readyz`)).statusCode === 200, {
      timeoutMs: 40_000,
      intervalMs: 200,
      what: 'the sidecar to be ready',
    });

    const agent = new Agent({ connections: 256 });
    cleanup.defer(() => agent.close());
    /** Per record value: the offset the bridge acknowledged, or null when it refused the record. */
    const answered = new Map<string, number | null>();
    const statuses = new Map<number, number>();
    const produce = async (first: number, count: number) => {
      const values = Array.from({ length: count }, (_, i) => `r-${first + i}`);
      let status = 0;
      let body: ProduceAnswer = {};
      try {
        const res = await request(`${sidecar.urls.bridge}/topics/${topic}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': JSON_TYPE },
          body: JSON.stringify({ records: values.map((value) => ({ key: value, value })) }),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        status = res.statusCode;
        body = (await res.body.json()) as ProduceAnswer;
      } catch {
        status = -1;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      values.forEach((value, i) => {
        const entry = body.offsets?.[i];
        answered.set(value, entry !== undefined && 'offset' in entry ? entry.offset : null);
      });
    };

    const leader = await cluster_.leaderOf(topic, 0);
    assert.equal(leader, 1, 'broker 1 leads partition 0');
    assert.equal(await cluster_.leaderOf(topic, 1), 1, 'and partition 1');
    const requests = Math.ceil(RECORDS / PER_REQUEST);
    const intervalMs = (PER_REQUEST / RATE) * 1000;
    const killAt = Math.floor(requests / 4);
    const started = Date.now();
    const inFlight: Promise<void>[] = [];
    let failover: Promise<{ newLeaders: number[] }> | undefined;
    for (let i = 0; i < requests; i += 1) {
      const wait = started + i * intervalMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (i === killAt) {
        failover = (async () => {
          await cluster_.kill(leader);
          const newLeader = await waitFor(
            async () => {
              const current = await cluster_.leaderOf(topic, 0);
              return current > 0 && current !== leader ? current : false;
            },
            { timeoutMs: 30_000, intervalMs: 250, what: `a new leader after killing broker ${leader}` },
          );
          const newLeaders = [newLeader, await cluster_.leaderOf(topic, 1)];
          await cluster_.restart(leader);
          return { newLeaders };
        })();
      }
      inFlight.push(produce(i * PER_REQUEST, Math.min(PER_REQUEST, RECORDS - i * PER_REQUEST)));
    }
    const { newLeaders } = await failover!;
    await Promise.all(inFlight);
    const producedInMs = Date.now() - started;

    const acknowledged = [...answered].filter(([, offset]) => offset !== null);
    const refused = answered.size - acknowledged.length;
    await waitFor(() => acknowledged.every(([value]) => sink.byValue.has(value)), {
      timeoutMs: 90_000,
      intervalMs: 250,
      what: `delivery of every acknowledged record (have ${sink.byValue.size} of ${acknowledged.length})`,
    });
    // The restarted broker is back in the ISR: the cluster healed, not just limped on.
    await waitFor(
      async () =>
        (await cluster_.isrOf(topic, 0)).length === 3 && (await cluster_.isrOf(topic, 1)).length === 3,
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        what: `broker ${leader} back in the ISR`,
      },
    );

    const inTopic = await kafka.recordCount(topic);
    const stored = await kafka.readTopic(topic, inTopic, { timeoutMs: 60_000 });
    const offsetsByValue = new Map<string, number[]>();
    for (const record of stored) {
      const value = JSON.parse(String(record.value)) as string;
      offsetsByValue.set(value, [...(offsetsByValue.get(value) ?? []), Number(record.offset)]);
    }
    const delivered = acknowledged.filter(([value]) => sink.byValue.has(value)).length;
    const duplicates = sink.deliveries - sink.byValue.size;
    console.log(
      `      failover: broker ${leader} killed, partition leaders → ${newLeaders.join(', ')}; sent ${answered.size}, acknowledged ${acknowledged.length}, ` +
        `refused ${refused}, in topic ${inTopic}, delivered ${delivered} (${sink.deliveries} deliveries), ` +
        `duplicates ${duplicates}; produced in ${producedInMs} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );

    assert.equal(answered.size, RECORDS, 'every record got an answer');
    for (const [value, offset] of acknowledged) {
      assert.deepEqual(offsetsByValue.get(value), [offset], `${value}: once, at the acknowledged offset`);
    }
    const written = [...offsetsByValue].filter(([, offsets]) => offsets.length > 1);
    assert.deepEqual(written, [], 'no record is in the topic twice');
    // Failover takes seconds, the delivery timeout 30 s: the bridge retries instead of refusing.
    assert.equal(refused, 0, `no record refused (statuses ${JSON.stringify(Object.fromEntries(statuses))})`);
    assert.equal(delivered, acknowledged.length, 'every acknowledged record delivered at least once');
  });
});

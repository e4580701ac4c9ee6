/**
 * bench/bridge-produce: REST produce through the sidecar's bridge versus kafkajs producing
 * directly in-process, on one local broker, in one run. Same records (size, keys), same acks
 * (all), same idempotent producer settings, same concurrency. Prints records/s and p50/p99 of a
 * request (or of a direct send), and the sidecar/direct ratio.
 *
 *   npx tsx bench/bridge-produce/run.ts [--requests N] [--batch N] [--concurrency N] [--record-bytes N]
 *
 * Not part of `npm test`: numbers from a noisy 2-core machine are compared within one run only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { Pool } from 'undici';
import { startLocalKafka } from '../../scripts/kafka/local-kafka.js';
import { percentile, startBridgeSidecar, type BridgeSidecar } from '../lib.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '1500' },
    batch: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '8' },
    'record-bytes': { type: 'string', default: '200' },
    partitions: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
  },
});
const REQUESTS = Number(args.requests);
const BATCH = Number(args.batch);
const CONCURRENCY = Number(args.concurrency);
const RECORD_BYTES = Number(args['record-bytes']);
const PARTITIONS = Number(args.partitions);
const ROUNDS = Number(args.rounds);

interface Result {
  name: string;
  records: number;
  seconds: number;
  latenciesMs: number[];
}

function makeBatch(seq: number): { key: string; value: string }[] {
  const filler = 'x'.repeat(Math.max(0, RECORD_BYTES - 20));
  return Array.from({ length: BATCH }, (_, i) => ({
    key: `key-${(seq * BATCH + i) % 1000}`,
    value: `${seq}-${i}-${filler}`,
  }));
}

/** Runs `REQUESTS` operations with `CONCURRENCY` workers; `warmup` operations first, unmeasured. */
async function drive(name: string, operation: (seq: number) => Promise<void>, warmup = 50): Promise<Result> {
  for (let i = 0; i < warmup; i += 1) await operation(-1 - i);
  const latenciesMs: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        const seq = next++;
        const t0 = process.hrtime.bigint();
        await operation(seq);
        latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { name, records: REQUESTS * BATCH, seconds, latenciesMs: latenciesMs.sort((a, b) => a - b) };
}

async function main(): Promise<void> {
  const broker = await startLocalKafka();
  const work = await mkdtemp(join(tmpdir(), 'bench-bridge-'));
  const kafka = new Kafka({ clientId: 'bench', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let sidecar: BridgeSidecar | undefined;
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: ['bench-direct', 'bench-sidecar'].map((topic) => ({ topic, numPartitions: PARTITIONS })),
    });

    // Direct: kafkajs in this process, idempotent, acks all, one send per batch.
    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const produceDirect = async (seq: number) => {
      await producer.send({ topic: 'bench-direct', acks: -1, messages: makeBatch(seq) });
    };

    // Through the sidecar: a real sidecar process with the bridge on, REST over loopback.
    sidecar = await startBridgeSidecar({
      workDir: work,
      bootstrap: broker.bootstrap,
      bin: 'dist',
      bridge: { maxInFlightBytes: 512 * 1024 * 1024 },
    });
    const { bridgeUrl } = sidecar;
    const pool = new Pool(bridgeUrl, { connections: CONCURRENCY, pipelining: 1 });
    const produceOverRest = async (seq: number) => {
      const res = await pool.request({
        path: '/topics/bench-sidecar',
        method: 'POST',
        headers: { 'content-type': 'application/vnd.kafka.text.v2+json' },
        body: JSON.stringify({ records: makeBatch(seq) }),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200)
        throw new Error(`produce answered ${res.statusCode}: ${text.slice(0, 300)}`);
    };
    // Alternate the two paths round by round, so neither always runs on a colder broker or JIT.
    const rounds: { direct: Result; sidecar: Result }[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const runDirect = () => drive('kafkajs direct', produceDirect);
      const runSidecar = () => drive('REST via mesh-sidecar', produceOverRest);
      if (round % 2 === 0) {
        const direct = await runDirect();
        rounds.push({ direct, sidecar: await runSidecar() });
      } else {
        const sidecar = await runSidecar();
        rounds.push({ direct: await runDirect(), sidecar });
      }
    }
    await producer.disconnect();
    await pool.close();
    const median = (pick: (r: { direct: Result; sidecar: Result }) => Result): Result => {
      const sorted = rounds.map(pick).sort((a, b) => a.records / a.seconds - b.records / b.seconds);
      const middle = sorted[Math.floor(sorted.length / 2)];
      return { ...middle, latenciesMs: rounds.flatMap((r) => pick(r).latenciesMs).sort((a, b) => a - b) };
    };
    const direct = median((r) => r.direct);
    const viaSidecar = median((r) => r.sidecar);

    // Every acknowledged record must be in the topic exactly once: count them.
    const counts: Record<string, number> = {};
    for (const topic of ['bench-direct', 'bench-sidecar']) {
      const offsets = await admin.fetchTopicOffsets(topic);
      counts[topic] = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
    }
    const results = [direct, viaSidecar];
    const lines = [
      `bench/bridge-produce — ${new Date().toISOString()}, ${ROUNDS} rounds of ${REQUESTS} requests × ${BATCH} records of ~${RECORD_BYTES} B, concurrency ${CONCURRENCY}, ${PARTITIONS} partitions, acks=all, idempotent, Kafka ${broker.bootstrap} (local 3.9.1)`,
      '',
      '| path | records/s | p50 ms | p99 ms |',
      '|---|---|---|---|',
      ...results.map(
        (r) =>
          `| ${r.name} | ${Math.round(r.records / r.seconds)} | ${percentile(r.latenciesMs, 50).toFixed(2)} | ${percentile(r.latenciesMs, 99).toFixed(2)} |`,
      ),
      '',
      `sidecar / direct throughput: ${(viaSidecar.records / viaSidecar.seconds / (direct.records / direct.seconds)).toFixed(2)}`,
      `sidecar p99 / direct p99: ${(percentile(viaSidecar.latenciesMs, 99) / percentile(direct.latenciesMs, 99)).toFixed(2)}`,
      `records in the topics (acknowledged: direct ${ROUNDS * (REQUESTS + 50) * BATCH}, sidecar ${ROUNDS * (REQUESTS + 50) * BATCH}): direct ${counts['bench-direct']}, sidecar ${counts['bench-sidecar']}`,
      `(records/s: median of ${ROUNDS} alternating rounds; latencies: all rounds pooled)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await sidecar?.stop();
    await admin.disconnect();
    await broker.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();

/**
 * bench/pull: records/s read by polling a pull consumer through the sidecar's bridge
 * (`GET /consumers/.../records`, binary format) versus a kafkajs consumer in this process, on one
 * local broker, in one run. Both read the same pre-filled topic from the beginning in a fresh group.
 *
 *   npx tsx bench/pull/run.ts [--records N] [--record-bytes N] [--partitions N] [--rounds N]
 *
 * The Strimzi bridge is not on Maven Central here, so the baseline (≥ 1.5× Strimzi) cannot
 * be measured in this run; kafkajs in-process is the ceiling the sidecar is compared with.
 * Not part of `npm test`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { Pool } from 'undici';
import { startLocalKafka } from '../../scripts/kafka/local-kafka.js';
import { startBridgeSidecar, type BridgeSidecar } from '../lib.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    'record-bytes': { type: 'string', default: '200' },
    partitions: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
  },
});
const RECORDS = Number(args.records);
const RECORD_BYTES = Number(args['record-bytes']);
const PARTITIONS = Number(args.partitions);
const ROUNDS = Number(args.rounds);
const TOPIC = 'bench-pull';

async function fill(kafka: Kafka): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const filler = 'x'.repeat(RECORD_BYTES);
  for (let sent = 0; sent < RECORDS; sent += 1000) {
    await producer.send({
      topic: TOPIC,
      acks: 1,
      messages: Array.from({ length: Math.min(1000, RECORDS - sent) }, (_, i) => ({
        key: `k${(sent + i) % 1000}`,
        value: filler,
      })),
    });
  }
  await producer.disconnect();
}

async function readDirect(kafka: Kafka, group: string): Promise<number> {
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const started = process.hrtime.bigint();
  let count = 0;
  await new Promise<void>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: ({ batch }) => {
        count += batch.messages.length;
        if (count >= RECORDS) resolve();
        return Promise.resolve();
      },
    });
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await consumer.disconnect();
  return count / seconds;
}

async function readThroughSidecar(bridgeUrl: string, group: string): Promise<number> {
  const pool = new Pool(bridgeUrl, { connections: 1 });
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, accept?: string) => {
    const res = await pool.request({
      method,
      path,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/vnd.kafka.v2+json' }),
        ...(accept ? { accept } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300)
      throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    return text;
  };
  const created = JSON.parse(
    await call('POST', `/consumers/${group}`, {
      format: 'binary',
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
    }),
  ) as { instance_id: string };
  const base = `/consumers/${group}/instances/${created.instance_id}`;
  await call('POST', `${base}/subscription`, { topics: [TOPIC] });
  const started = process.hrtime.bigint();
  let count = 0;
  while (count < RECORDS) {
    const text = await call(
      'GET',
      `${base}/records?timeout=1000`,
      undefined,
      'application/vnd.kafka.binary.v2+json',
    );
    count += (JSON.parse(text) as unknown[]).length;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await call('POST', `${base}/offsets`);
  await call('DELETE', base);
  await pool.close();
  return count / seconds;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bench-pull-'));
  const broker = await startLocalKafka();
  const kafka = new Kafka({
    clientId: 'bench-pull',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  let sidecar: BridgeSidecar | undefined;
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] });
    await fill(kafka);

    sidecar = await startBridgeSidecar({ workDir: work, bootstrap: broker.bootstrap, bin: 'tsx' });
    const { bridgeUrl } = sidecar;

    const rows: { round: number; direct: number; sidecar: number }[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const direct = await readDirect(kafka, `bench-direct-${round}`);
      const viaSidecar = await readThroughSidecar(bridgeUrl, `bench-sidecar-${round}`);
      rows.push({ round, direct, sidecar: viaSidecar });
    }
    console.log(
      `\n${RECORDS} records of ${RECORD_BYTES} B, ${PARTITIONS} partitions, read from the beginning`,
    );
    console.log(
      '| round | kafkajs in-process (rec/s) | polling via sidecar (rec/s) | sidecar / kafkajs | Strimzi bridge |',
    );
    console.log('|---|---|---|---|---|');
    for (const row of rows) {
      console.log(
        `| ${row.round + 1} | ${Math.round(row.direct).toLocaleString('en')} | ${Math.round(row.sidecar).toLocaleString('en')} | ${(row.sidecar / row.direct).toFixed(2)} | not measurable here |`,
      );
    }
  } finally {
    await sidecar?.stop();
    await admin.disconnect();
    await broker.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();

/**
 * bench/processor: stream processors (consume → HTTP app → produce) through a real sidecar process
 * versus an in-process kafkajs consume-transform-produce loop calling the same app, for both
 * guarantees, in one run, on one local broker.
 *
 * Per guarantee, mode and path: a backlog of records is consumed, each POSTed to the app as a
 * CloudEvent (one request in flight per partition; batch mode: up to `maxBatch` per request), the
 * app answers one output record per input, the outputs are produced and the input offsets
 * committed — `exactly_once`: one transaction per unit of up to 500 records of a partition
 * (transactional producer per input partition, `sendOffsets`), `at_least_once`: the idempotent
 * producer, then the offset commit. records/s over the last 70% of the backlog: from the app's
 * answer to the record at 30% (the first 30% warm up a freshly started process) until every input
 * offset is committed.
 *
 *   npx tsx bench/processor/run.ts [--records N] [--batch-records N] [--partitions N] [--max-batch N]
 *
 * Not part of `npm test`; numbers from a noisy 2-core machine are compared within one run only.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type Message,
  type Producer,
} from 'kafkajs';
import { Pool } from 'undici';
import { toCloudEvent } from '../../bridge/consumer/push/cloudevents.js';
import { startSidecarProcess, type SidecarProcess } from '../../integration/helpers/sidecar-process.js';
import { startLocalKafka } from '../../scripts/kafka/local-kafka.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    'batch-records': { type: 'string', default: '50000' },
    partitions: { type: 'string', default: '3' },
    'max-batch': { type: 'string', default: '100' },
  },
});
const RECORDS = Number(args.records);
const BATCH_RECORDS = Number(args['batch-records']);
const PARTITIONS = Number(args.partitions);
const MAX_BATCH = Number(args['max-batch']);
/** Input records per commit (one transaction with exactly_once), the sidecar's default. */
const UNIT = 500;

type Guarantee = 'exactly_once' | 'at_least_once';
type Mode = 'single' | 'batch';
type Path = 'kafkajs in-process' | 'mesh-sidecar';
interface Answer {
  records: { topic: string; key?: string; value: unknown }[];
}

/** The app: one output per input event, on the topic named by the request path. */
async function startApp() {
  /** Events answered per path, and when the count first reached the path's warm-up mark. */
  const counters = new Map<string, { events: number; warmCount: number; warmAt: number }>();
  const counter = (path: string) => {
    let c = counters.get(path);
    if (!c) counters.set(path, (c = { events: 0, warmCount: Infinity, warmAt: 0 }));
    return c;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const events = (Array.isArray(body) ? body : [body]) as { data: unknown; partitionkey?: string }[];
      const c = counter(path);
      c.events += events.length;
      if (c.warmAt === 0 && c.events >= c.warmCount) c.warmAt = Date.now();
      const answer: Answer = {
        records: events.map((event) => ({
          topic: path.slice(1),
          key: event.partitionkey,
          value: event.data,
        })),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counter,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The baseline: consume-transform-produce with kafkajs in this process, the sidecar's commit units. */
async function startBaseline(
  kafka: Kafka,
  appUrl: string,
  input: string,
  output: string,
  group: string,
  guarantee: Guarantee,
  mode: Mode,
): Promise<{ stop(): Promise<void> }> {
  const pool = new Pool(appUrl, { connections: PARTITIONS * 2, pipelining: 1 });
  const consumer: Consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  const producers = new Map<number, Promise<Producer>>();
  const producerFor = (partition: number) => {
    let producer = producers.get(partition);
    if (!producer) {
      const made =
        guarantee === 'exactly_once'
          ? kafka.producer({
              transactionalId: `bench-${group}-${input}-${partition}`,
              idempotent: true,
              maxInFlightRequests: 1,
              createPartitioner: Partitioners.DefaultPartitioner,
            })
          : kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
      producer = made.connect().then(() => made);
      producers.set(partition, producer);
    }
    return producer;
  };
  const transform = async (body: string, contentType: string): Promise<Message[]> => {
    const res = await pool.request({
      method: 'POST',
      path: `/${output}`,
      headers: { 'content-type': contentType },
      body,
    });
    const answer = (await res.body.json()) as Answer;
    return answer.records.map((r) => ({ key: r.key ?? null, value: JSON.stringify(r.value) }));
  };
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async (payload) => {
      const { batch } = payload;
      const producer = await producerFor(batch.partition);
      for (let start = 0; start < batch.messages.length; start += UNIT) {
        const unit = batch.messages.slice(start, start + UNIT);
        const outputs: Message[] = [];
        if (mode === 'single') {
          for (const message of unit) {
            const event = toCloudEvent({ topic: input, partition: batch.partition, message });
            outputs.push(...(await transform(JSON.stringify(event), 'application/cloudevents+json')));
          }
        } else {
          for (let i = 0; i < unit.length; i += MAX_BATCH) {
            const events = unit
              .slice(i, i + MAX_BATCH)
              .map((message) => toCloudEvent({ topic: input, partition: batch.partition, message }));
            outputs.push(...(await transform(JSON.stringify(events), 'application/cloudevents-batch+json')));
          }
        }
        const next = (BigInt(unit.at(-1)!.offset) + 1n).toString();
        if (guarantee === 'exactly_once') {
          const transaction = await producer.transaction();
          await transaction.sendBatch({ topicMessages: [{ topic: output, messages: outputs }], acks: -1 });
          await transaction.sendOffsets({
            consumerGroupId: group,
            topics: [{ topic: input, partitions: [{ partition: batch.partition, offset: next }] }],
          });
          await transaction.commit();
        } else {
          await producer.sendBatch({ topicMessages: [{ topic: output, messages: outputs }], acks: -1 });
          await consumer.commitOffsets([{ topic: input, partition: batch.partition, offset: next }]);
        }
        payload.resolveOffset(unit.at(-1)!.offset);
        await payload.heartbeat();
      }
    },
  });
  return {
    stop: async () => {
      await consumer.disconnect();
      for (const producer of producers.values()) await (await producer).disconnect();
      await pool.close();
    },
  };
}

async function allCommitted(admin: Admin, group: string, topic: string): Promise<boolean> {
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const ends = await admin.fetchTopicOffsets(topic);
  return ends.every(
    (end) => committed.partitions.find((p) => p.partition === end.partition)?.offset === end.high,
  );
}

interface Row {
  guarantee: Guarantee;
  mode: Mode;
  path: Path;
  records: number;
  recordsPerSecond: number;
}

async function main(): Promise<void> {
  const broker = await startLocalKafka();
  const kafka = new Kafka({
    clientId: 'bench-processor',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const app = await startApp();
  const rows: Row[] = [];
  let sidecar: SidecarProcess | undefined;
  let baseline: { stop(): Promise<void> } | undefined;
  const filler = 'x'.repeat(150);

  try {
    for (const mode of ['single', 'batch'] as const) {
      const count = mode === 'single' ? RECORDS : BATCH_RECORDS;
      for (const guarantee of ['exactly_once', 'at_least_once'] as const) {
        for (const path of ['kafkajs in-process', 'mesh-sidecar'] as const) {
          const tag = `${mode}-${guarantee.replace('_', '-')}-${path === 'mesh-sidecar' ? 'sidecar' : 'direct'}`;
          const input = `bench-proc-${tag}-in`;
          const output = `bench-proc-${tag}-out`;
          const group = `bench-proc-${tag}`;
          await admin.createTopics({
            waitForLeaders: true,
            topics: [input, output].map((topic) => ({ topic, numPartitions: PARTITIONS })),
          });
          for (let start = 0; start < count; start += 1_000) {
            await producer.send({
              topic: input,
              acks: -1,
              messages: Array.from({ length: Math.min(1_000, count - start) }, (_, i) => ({
                key: `key-${(start + i) % 1000}`,
                value: JSON.stringify({ seq: start + i, filler }),
              })),
            });
          }
          // The first 30% warm the JIT of a freshly started process; records/s is measured over the rest.
          const answered = app.counter(`/${output}`);
          answered.warmCount = Math.round(count * 0.3);
          if (path === 'mesh-sidecar') {
            sidecar = await startSidecarProcess(
              {
                admin: { host: '127.0.0.1', port: 0 },
                ingress: { host: '127.0.0.1', port: 0, target: app.url },
                egress: { enabled: false },
                kafka: { bootstrap: [broker.bootstrap] },
                log: { level: 'info' },
                shutdown: { drainDelayMs: 0 },
                processors: [
                  {
                    name: 'bench',
                    topics: [input],
                    group,
                    path: `/${output}`,
                    outputTopics: [output],
                    guarantee,
                    mode,
                    maxBatch: MAX_BATCH,
                    autoOffsetReset: 'earliest',
                    maxConcurrency: PARTITIONS,
                    commitRecords: UNIT,
                  },
                ],
              },
              { startTimeoutMs: 60_000 },
            );
          } else {
            baseline = await startBaseline(kafka, app.url, input, output, group, guarantee, mode);
          }
          const deadline = Date.now() + 300_000;
          while (!(await allCommitted(admin, group, input))) {
            if (Date.now() > deadline) throw new Error(`${tag}: not all ${count} inputs committed in time`);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          const elapsed = Math.max(1, Date.now() - answered.warmAt);
          rows.push({
            guarantee,
            mode,
            path,
            records: count,
            recordsPerSecond: Math.round(((count - answered.warmCount) / elapsed) * 1_000),
          });
          process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`);
          // Stop this path before the next one runs, so they never share the CPU.
          if (sidecar) {
            sidecar.proc.kill('SIGTERM');
            await sidecar.exited;
            await sidecar.cleanup();
            sidecar = undefined;
          }
          await baseline?.stop();
          baseline = undefined;
        }
      }
    }
    const rate = (guarantee: Guarantee, mode: Mode, path: Path) =>
      rows.find((r) => r.guarantee === guarantee && r.mode === mode && r.path === path)!.recordsPerSecond;
    const lines = [
      `bench/processor — ${new Date().toISOString()}, ${PARTITIONS} partitions, backlog ${RECORDS} (single) / ${BATCH_RECORDS} (batch, maxBatch ${MAX_BATCH}) records of ~200 B, one output per input, ${UNIT} records per commit, Kafka ${broker.bootstrap} (local)`,
      '',
      '| mode | guarantee | kafkajs in-process records/s | mesh-sidecar records/s | sidecar / in-process |',
      '|---|---|---|---|---|',
      ...(['single', 'batch'] as const).flatMap((mode) =>
        (['exactly_once', 'at_least_once'] as const).map((guarantee) => {
          const direct = rate(guarantee, mode, 'kafkajs in-process');
          const viaSidecar = rate(guarantee, mode, 'mesh-sidecar');
          return `| ${mode} | ${guarantee} | ${direct} | ${viaSidecar} | ${(viaSidecar / direct).toFixed(2)} |`;
        }),
      ),
      '',
      `exactly_once / at_least_once through the sidecar: single ${(rate('exactly_once', 'single', 'mesh-sidecar') / rate('at_least_once', 'single', 'mesh-sidecar')).toFixed(2)}, batch ${(rate('exactly_once', 'batch', 'mesh-sidecar') / rate('at_least_once', 'batch', 'mesh-sidecar')).toFixed(2)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await sidecar?.cleanup();
    await baseline?.stop().catch(() => undefined);
    await producer.disconnect();
    await admin.disconnect();
    await app.close();
    await broker.stop();
  }
}

await main();

/**
 * bench/push: push subscriptions through a real sidecar process versus a kafkajs consumer in this
 * process calling the same HTTP app, in one run, on one local broker, for single and batch mode.
 *
 * Per mode and path: (1) throughput — a backlog of records is consumed and delivered, records/s
 * from the first to the last delivery; (2) latency — records are produced at a steady rate into an
 * empty topic while the consumer is caught up (records/s over the last 70% of the backlog: the first
 * 30% warm up a freshly started process); end-to-end latency is delivery time at the app minus
 * the produce time carried in the record. Both paths deliver the same CloudEvents bodies, one
 * request in flight per partition (the sidecar's `partition` ordering), and commit after delivery.
 *
 *   npx tsx bench/push/run.ts [--records N] [--batch-records N] [--partitions N] [--rate N] [--seconds N]
 *                             [--baseline-json stringify|fast] [--modes single,batch]
 *
 * Beside records/s it reports the CPU (cores, from /proc) of the benchmark process (the app, and the
 * baseline consumer on its path), the sidecar and the broker over the measured window: on a 2-core
 * machine the sidecar path runs three busy processes, so whether a path is CPU-bound shows there.
 *
 * Not part of `npm test`; numbers from a noisy 2-core machine are compared within one run only.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners, type Consumer, type KafkaMessage } from 'kafkajs';
import { Pool } from 'undici';
import { CloudEventBatch, cloudEventBytes, toCloudEvent } from '../../bridge/consumer/push/cloudevents.js';
import { startSidecarProcess, type SidecarProcess } from '../../integration/helpers/sidecar-process.js';
import { startLocalKafka } from '../../scripts/kafka/local-kafka.js';
import { percentile } from '../lib.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    'batch-records': { type: 'string', default: '200000' },
    partitions: { type: 'string', default: '3' },
    'max-batch': { type: 'string', default: '100' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '5' },
    // `stringify` (the yardstick of issue 7): JSON.stringify(toCloudEvent(...)); `fast`: the
    // sidecar's own serializer (cloudEventBytes, CloudEventBatch), for a baseline doing the same
    // work per record.
    'baseline-json': { type: 'string', default: 'stringify' },
    modes: { type: 'string', default: 'single,batch' },
  },
});
const RECORDS = Number(args.records);
const BATCH_RECORDS = Number(args['batch-records']);
const PARTITIONS = Number(args.partitions);
const MAX_BATCH = Number(args['max-batch']);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const FAST_BASELINE = args['baseline-json'] === 'fast';
const MODES = args.modes.split(',') as Mode[];

type Mode = 'single' | 'batch';
interface Counter {
  delivered: number;
  first: number;
  last: number;
  /** When `delivered` first reached `warmCount` (the measured window starts there). */
  warmAt: number;
  warmCount: number;
  latenciesMs: number[];
  /** Requests received, and how many were in flight at the app when each arrived (diagnostics). */
  requests: number;
  inFlight: number;
  inFlightSum: number;
}

/** The app: counts delivered events per path, and end-to-end latency from the `t` in the data. */
async function startApp() {
  const counters = new Map<string, Counter>();
  const counter = (path: string) => {
    let c = counters.get(path);
    if (!c)
      counters.set(
        path,
        (c = {
          delivered: 0,
          first: 0,
          last: 0,
          warmAt: 0,
          warmCount: Infinity,
          latenciesMs: [],
          requests: 0,
          inFlight: 0,
          inFlightSum: 0,
        }),
      );
    return c;
  };
  const server = createServer((req, res) => {
    const arriving = counter(req.url ?? '/');
    arriving.requests++;
    arriving.inFlightSum += ++arriving.inFlight;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const now = Date.now();
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const events = (Array.isArray(body) ? body : [body]) as { data: { t: number } }[];
      const c = counter(req.url ?? '/');
      if (c.delivered === 0) c.first = now;
      c.delivered += events.length;
      c.last = now;
      if (c.warmAt === 0 && c.delivered >= c.warmCount) c.warmAt = now;
      for (const event of events) c.latenciesMs.push(now - event.data.t);
      c.inFlight--;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counter,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function waitUntil(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The baseline: a kafkajs consumer in this process, one request in flight per partition. */
async function startInProcessConsumer(
  kafka: Kafka,
  appUrl: string,
  topic: string,
  path: string,
  mode: Mode,
): Promise<{ consumer: Consumer; pool: Pool }> {
  const pool = new Pool(appUrl, { connections: PARTITIONS * 2, pipelining: 1 });
  const consumer = kafka.consumer({
    groupId: `baseline-${topic}`,
    maxWaitTimeInMs: mode === 'batch' ? 100 : 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const post = async (body: string | Buffer, contentType: string) => {
    const res = await pool.request({ method: 'POST', path, headers: { 'content-type': contentType }, body });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`app answered ${res.statusCode}`);
  };
  const event = (partition: number, message: KafkaMessage) =>
    FAST_BASELINE
      ? cloudEventBytes({ topic, partition, message })
      : JSON.stringify(toCloudEvent({ topic, partition, message }));
  const batchBody = (partition: number, messages: KafkaMessage[]) =>
    FAST_BASELINE
      ? CloudEventBatch.of(
          messages.map((message) => ({ topic, partition, message })),
          () => ({}),
        ).body
      : `[${messages.map((m) => event(partition, m)).join(',')}]`;
  let joined!: () => void;
  const joinedPromise = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.run({
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async (payload) => {
      const { batch } = payload;
      if (mode === 'single') {
        for (const message of batch.messages) {
          await post(event(batch.partition, message), 'application/cloudevents+json');
          payload.resolveOffset(message.offset);
        }
      } else {
        for (let i = 0; i < batch.messages.length; i += MAX_BATCH) {
          const chunk = batch.messages.slice(i, i + MAX_BATCH);
          await post(batchBody(batch.partition, chunk), 'application/cloudevents-batch+json');
          payload.resolveOffset(chunk.at(-1)!.offset);
        }
      }
      await payload.heartbeat();
    },
  });
  await joinedPromise;
  return { consumer, pool };
}

/** CPU time (user + system, ms) of one process, without its children; 0 once it is gone. */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** Samples the CPU time of some processes every 50 ms; `coresSince(t)`: cores used from `t` on. */
function cpuSampler(pids: Record<string, number>) {
  const samples: { at: number; ms: Record<string, number> }[] = [];
  const sample = () =>
    samples.push({
      at: Date.now(),
      ms: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuMs(pid)])),
    });
  sample();
  const timer = setInterval(sample, 50);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
    },
    coresSince: (at: number): Record<string, number> => {
      const from = samples.find((s) => s.at >= at) ?? samples[0];
      const to = samples.at(-1)!;
      const elapsed = Math.max(1, to.at - from.at);
      return Object.fromEntries(
        Object.keys(pids).map((name) => [name, +((to.ms[name] - from.ms[name]) / elapsed).toFixed(2)]),
      );
    },
  };
}

interface Row {
  mode: Mode;
  path: string;
  recordsPerSecond: number;
  p50: number;
  p99: number;
  /** Cores used over the measured window: this process (app, and the baseline), sidecar, broker. */
  cores: Record<string, number>;
}

async function main(): Promise<void> {
  const broker = await startLocalKafka();
  const kafka = new Kafka({
    clientId: 'bench-push',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const app = await startApp();
  const rows: Row[] = [];
  const sidecars: SidecarProcess[] = [];
  const baselines: { consumer: Consumer; pool: Pool }[] = [];
  const filler = 'x'.repeat(150);

  const backlog = async (topic: string, count: number) => {
    for (let start = 0; start < count; start += 1_000) {
      const t = Date.now();
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: Math.min(1_000, count - start) }, (_, i) => ({
          key: `key-${(start + i) % 1000}`,
          value: JSON.stringify({ t, seq: start + i, filler }),
        })),
      });
    }
  };
  /** Produces at RATE records/s for SECONDS into `topic`, each stamped with its produce time. */
  const steady = async (topic: string) => {
    const total = RATE * SECONDS;
    const started = Date.now();
    for (let i = 0; i < total; i += 10) {
      const due = started + (i / RATE) * 1_000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await producer.send({
        topic,
        acks: 1,
        messages: Array.from({ length: 10 }, (_, j) => ({
          key: `key-${(i + j) % 1000}`,
          value: JSON.stringify({ t: Date.now(), seq: i + j, filler }),
        })),
      });
    }
    return total;
  };

  try {
    for (const mode of MODES) {
      const count = mode === 'single' ? RECORDS : BATCH_RECORDS;
      for (const path of ['kafkajs in-process', 'mesh-sidecar'] as const) {
        const tag = `${mode}-${path === 'mesh-sidecar' ? 'sidecar' : 'direct'}`;
        const throughputTopic = `bench-push-${tag}-thr`;
        const latencyTopic = `bench-push-${tag}-lat`;
        await admin.createTopics({
          waitForLeaders: true,
          topics: [throughputTopic, latencyTopic].map((topic) => ({ topic, numPartitions: PARTITIONS })),
        });
        await backlog(throughputTopic, count);
        const thr = app.counter(`/${tag}/thr`);
        // The first 30% warm the JIT of a freshly started process; records/s is measured over the rest.
        thr.warmCount = Math.round(count * 0.3);
        const lat = app.counter(`/${tag}/lat`);
        if (path === 'mesh-sidecar') {
          const subscription = (name: string, topic: string, p: string) => ({
            name,
            topics: [topic],
            group: `sidecar-${topic}`,
            path: p,
            mode,
            maxBatch: MAX_BATCH,
            autoOffsetReset: 'earliest',
            maxConcurrency: PARTITIONS,
          });
          const sidecar = await startSidecarProcess(
            {
              admin: { host: '127.0.0.1', port: 0 },
              ingress: { host: '127.0.0.1', port: 0, target: app.url },
              egress: { enabled: false },
              kafka: { bootstrap: [broker.bootstrap] },
              log: { level: 'info' },
              shutdown: { drainDelayMs: 0 },
              subscriptions: [
                subscription('thr', throughputTopic, `/${tag}/thr`),
                subscription('lat', latencyTopic, `/${tag}/lat`),
              ],
            },
            { startTimeoutMs: 60_000 },
          );
          sidecars.push(sidecar);
          await sidecar.waitForLog(
            (line) => line.msg === 'subscription joined its group' && line.subscription === 'lat',
            60_000,
          );
        } else {
          baselines.push(await startInProcessConsumer(kafka, app.url, throughputTopic, `/${tag}/thr`, mode));
          baselines.push(await startInProcessConsumer(kafka, app.url, latencyTopic, `/${tag}/lat`, mode));
        }
        const cpu = cpuSampler({
          bench: process.pid,
          broker: broker.pid,
          ...(sidecars[0]?.proc.pid !== undefined ? { sidecar: sidecars[0].proc.pid } : {}),
        });
        await waitUntil(() => thr.delivered >= count, 300_000, `${tag}: ${count} records delivered`);
        cpu.stop();
        const produced = await steady(latencyTopic);
        await waitUntil(() => lat.delivered >= produced, 60_000, `${tag}: steady records delivered`);
        const sorted = lat.latenciesMs.sort((a, b) => a - b);
        rows.push({
          mode,
          path,
          recordsPerSecond: Math.round(
            ((thr.delivered - thr.warmCount) / Math.max(1, thr.last - thr.warmAt)) * 1_000,
          ),
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          cores: cpu.coresSince(thr.warmAt),
        });
        process.stderr.write(
          `${JSON.stringify({ ...rows.at(-1), recordsPerRequest: +(thr.delivered / thr.requests).toFixed(1), meanInFlight: +(thr.inFlightSum / thr.requests).toFixed(2) })}\n`,
        );
        // Stop this path before the next one runs, so they never share the CPU.
        for (const sidecar of sidecars.splice(0)) {
          sidecar.proc.kill('SIGTERM');
          await sidecar.exited;
          await sidecar.cleanup();
        }
        for (const { consumer, pool } of baselines.splice(0)) {
          await consumer.disconnect();
          await pool.close();
        }
      }
    }
    const ratio = (mode: Mode) => {
      const [direct, sidecar] = ['kafkajs in-process', 'mesh-sidecar'].map((p) =>
        rows.find((r) => r.mode === mode && r.path === p)!,
      );
      return (sidecar.recordsPerSecond / direct.recordsPerSecond).toFixed(2);
    };
    const lines = [
      `bench/push — ${new Date().toISOString()}, baseline JSON ${FAST_BASELINE ? 'cloudEventBytes / CloudEventBatch' : 'JSON.stringify(toCloudEvent)'}, ${PARTITIONS} partitions, backlog ${RECORDS} (single) / ${BATCH_RECORDS} (batch, maxBatch ${MAX_BATCH}) records of ~200 B, latency at ${RATE} records/s for ${SECONDS} s, Kafka ${broker.bootstrap} (local)`,
      '',
      '| mode | path | records/s | e2e p50 ms | e2e p99 ms | CPU cores: bench process / sidecar / broker |',
      '|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.mode} | ${r.path} | ${r.recordsPerSecond} | ${r.p50} | ${r.p99} | ${r.cores.bench} / ${r.cores.sidecar ?? '–'} / ${r.cores.broker} |`,
      ),
      '',
      `sidecar / in-process throughput: ${MODES.map((mode) => `${mode} ${ratio(mode)}`).join(', ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const sidecar of sidecars) await sidecar.cleanup();
    for (const { consumer } of baselines) await consumer.disconnect().catch(() => undefined);
    await producer.disconnect();
    await admin.disconnect();
    await app.close();
    await broker.stop();
  }
}

await main();

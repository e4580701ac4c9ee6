/**
 * `npm run soak`: the mixed load of the fault suite (ingress requests, egress calls, bridge produce,
 * push delivery) against a real sidecar process for a configurable time, printing the sidecar's
 * RSS, heap, event-loop delay p99 and the error counts every few seconds, and a verdict at the end
 * (RSS growth over the second half, errors). Not part of CI; loopback only; stops by itself.
 *
 *   npm run soak -- [--duration 600] [--interval 10] [--concurrency 4]
 *
 * Uses KAFKA_BOOTSTRAP when set, else starts the local broker (scripts/kafka/local-kafka.ts). On
 * the shared 2-core machine run it under the heavy lock: `flock /tmp/mesh-heavy.lock npm run soak`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { request } from 'undici';
import { startSidecarProcess } from '../integration/helpers/sidecar-process.js';
import { startLocalKafka } from './kafka/local-kafka.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    interval: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '4' },
  },
});
const DURATION_MS = Number(args.duration) * 1000;
const INTERVAL_MS = Number(args.interval) * 1000;
const CONCURRENCY = Number(args.concurrency);

type Kind = 'ingress' | 'egress' | 'produce' | 'push';
const counts: Record<Kind, { ok: number; errors: number }> = {
  ingress: { ok: 0, errors: 0 },
  egress: { ok: 0, errors: 0 },
  produce: { ok: 0, errors: 0 },
  push: { ok: 0, errors: 0 },
};

async function main(): Promise<void> {
  const fromEnv = process.env['KAFKA_BOOTSTRAP'];
  const broker = fromEnv ? undefined : await startLocalKafka();
  const bootstrap = fromEnv ? fromEnv.split(',') : [broker!.bootstrap];
  const kafka = new Kafka({ clientId: 'soak', brokers: bootstrap, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const suffix = Date.now().toString(36);
  const produceTopic = `soak-produce-${suffix}`;
  const pushTopic = `soak-push-${suffix}`;
  await admin.createTopics({
    topics: [
      { topic: produceTopic, numPartitions: 3 },
      { topic: pushTopic, numPartitions: 3 },
    ],
    waitForLeaders: true,
  });

  const app = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/events') counts.push.ok += 1;
      res.writeHead(req.url === '/events' ? 204 : 200).end(req.url === '/events' ? undefined : '{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;

  const config = {
    admin: { host: '127.0.0.1', port: 0 },
    ingress: { host: '127.0.0.1', port: 0, target: appUrl },
    egress: { port: 0, services: { orders: { endpoints: [appUrl] } } },
    bridge: { enabled: true, port: 0 },
    kafka: { bootstrap },
    subscriptions: [{ name: 'soak', topics: [pushTopic], group: `soak-${suffix}`, path: '/events' }],
    shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
    // The start-up line (with the bound addresses) is logged at info.
    log: { level: 'info' },
  };
  const sidecar = await startSidecarProcess(config, { startTimeoutMs: 60_000 });
  // Then warn only (a reloadable section): access lines would pile up in this process for hours.
  await sidecar.rewriteConfig({ ...config, log: { level: 'warn' } });
  sidecar.proc.kill('SIGHUP');
  for (let reloaded = false; !reloaded; await new Promise((resolve) => setTimeout(resolve, 100))) {
    const metrics = await (await request(`${sidecar.urls.admin}/metrics`)).body.text();
    reloaded = /^mesh_config_reloads_total\{result="success"\} 1$/m.test(metrics);
  }
  // Load starts once every component is ready (the bridge producer connected, the group joined).
  for (let ready = false; !ready; await new Promise((resolve) => setTimeout(resolve, 200))) {
    const res = await request(`${sidecar.urls.admin}/readyz`);
    await res.body.dump();
    ready = res.statusCode === 200;
  }
  const { ingress, egress, bridge, admin: adminUrl } = sidecar.urls;
  console.log(
    `soak: ${DURATION_MS / 1000} s, ${CONCURRENCY} loops per kind, sidecar pid ${sidecar.proc.pid}`,
  );

  const deadline = Date.now() + DURATION_MS;
  const loop = async (kind: Kind, once: () => Promise<boolean>) => {
    while (Date.now() < deadline) {
      try {
        if (await once()) counts[kind].ok += 1;
        else counts[kind].errors += 1;
      } catch {
        counts[kind].errors += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const ok = async (res: Awaited<ReturnType<typeof request>>) => {
    await res.body.dump();
    return res.statusCode < 400;
  };
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let seq = 0;
  const loops: Promise<void>[] = [];
  for (let i = 0; i < CONCURRENCY; i += 1) {
    loops.push(loop('ingress', async () => ok(await request(`${ingress}/work?n=${seq++}`))));
    loops.push(
      loop('egress', async () => ok(await request(`${egress}/work`, { headers: { host: 'orders' } }))),
    );
    loops.push(
      loop('produce', async () =>
        ok(
          await request(`${bridge}/topics/${produceTopic}`, {
            method: 'POST',
            headers: { 'content-type': 'application/vnd.kafka.json.v2+json' },
            body: JSON.stringify({ records: [{ key: `k${seq}`, value: { n: seq++ } }] }),
          }),
        ),
      ),
    );
  }
  // Push: a steady 200 records/s straight into Kafka (errors here are the producer's).
  loops.push(
    (async () => {
      while (Date.now() < deadline) {
        try {
          await producer.send({
            topic: pushTopic,
            messages: Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: `v${seq++}` })),
          });
        } catch {
          counts.push.errors += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })(),
  );

  const samples: { at: number; rss: number }[] = [];
  const started = Date.now();
  const sample = async () => {
    const text = await (await request(`${adminUrl}/metrics`)).body.text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const rss = metric('process_resident_memory_bytes');
    samples.push({ at: Date.now() - started, rss });
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    const kinds = (Object.keys(counts) as Kind[])
      .map((kind) => `${kind} ${counts[kind].ok}/${counts[kind].errors}`)
      .join('  ');
    console.log(
      `t=${String(Math.round((Date.now() - started) / 1000)).padStart(5)}s  rss ${mib(rss)}  heap ${mib(metric('nodejs_heap_size_used_bytes'))}  ` +
        `loop p99 ${(metric('nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(1)} ms  ok/errors: ${kinds}`,
    );
  };
  const timer = setInterval(
    () => void sample().catch((err: unknown) => console.log(`sample failed: ${String(err)}`)),
    INTERVAL_MS,
  );
  await Promise.all(loops);
  clearInterval(timer);
  await sample();

  sidecar.proc.kill('SIGTERM');
  const code = await sidecar.exited;
  const half = samples.filter((s) => s.at >= DURATION_MS / 2);
  const growth = half.length >= 2 ? half.at(-1)!.rss - half[0].rss : 0;
  const errors = (Object.keys(counts) as Kind[]).reduce((sum, kind) => sum + counts[kind].errors, 0);
  console.log(
    `soak done: sidecar exit ${code}; RSS growth over the second half ${(growth / 2 ** 20).toFixed(1)} MiB; errors ${errors}`,
  );
  await producer.disconnect();
  await admin.deleteTopics({ topics: [produceTopic, pushTopic] }).catch(() => undefined);
  await admin.disconnect();
  await new Promise<void>((resolve) => app.close(() => resolve()));
  await sidecar.cleanup();
  await broker?.stop();
  process.exitCode = code === 0 && errors === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

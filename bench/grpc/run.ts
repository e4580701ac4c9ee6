/**
 * gRPC benchmark: unary calls from a grpc-js client to a grpc-js app (bench/grpc/app.ts, its own
 * process) directly, through nginx from Debian as the reference gRPC proxy (`grpc_pass`, HTTP/2 both
 * ways), and through the sidecar's ingress (`targetProtocol: http2`) and egress (`protocol: http2`),
 * all over h2c, in one run.
 *
 *   npm run build && npx tsx bench/grpc/run.ts [--duration 8] [--rate 500] [--concurrency 50] [--rounds 3]
 *
 * Per target: peak calls per second with `concurrency` calls in flight (closed loop), and latency at a
 * fixed rate (open loop: calls start on schedule whether or not earlier ones have ended, latency counted
 * from the scheduled start) with the CPU time the proxy process spent per call. Added latency = proxy
 * percentile − direct percentile; targets interleaved over the rounds, each figure the median of its
 * rounds. The client is grpc-js in this process: at peak it is as busy as the proxies, so the peak
 * ratios understate the differences between them.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../scripts/lib/ports.js';
import { SIDECAR_NODE_FLAGS } from '../../services/sidecar/node-flags.js';
import { cpuTimeMs, percentile, startNginx, startProcess, waitUntilOk } from '../lib.js';
import { bytes, ECHO_PATH } from './echo.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    rate: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
});
const durationS = Number(values.duration);
const rate = Number(values.rate);
const concurrency = Number(values.concurrency);
const roundCount = Number(values.rounds);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const message = Buffer.alloc(64, 0x61);

interface Target {
  readonly name: string;
  readonly client: grpc.Client;
  /** The process whose CPU time is counted. */
  readonly pid: number;
}

function call(client: grpc.Client): Promise<boolean> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(ECHO_PATH, bytes, bytes, message, (err) => resolve(err === null));
  });
}

/** Calls completed per second with `concurrency` calls always in flight. */
async function peak(client: grpc.Client): Promise<number> {
  const end = performance.now() + durationS * 1000;
  let done = 0;
  let failed = 0;
  const worker = async () => {
    while (performance.now() < end) {
      if (await call(client)) done += 1;
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (failed > 0) console.warn(`  ${failed} calls failed at peak`);
  return done / durationS;
}

/** Latencies (ms, sorted) at the fixed rate, and the CPU µs per call of `pid` meanwhile. */
async function fixedRate(client: grpc.Client, pid: number): Promise<{ latencies: number[]; cpuUs: number }> {
  const total = Math.round(rate * durationS);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let failed = 0;
  const cpuBefore = cpuTimeMs(pid);
  const begin = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - begin) * rate) / 1000) + 1);
      while (sent < due) {
        const scheduled = begin + (sent * 1000) / rate;
        sent += 1;
        pending.push(
          call(client).then((ok) => {
            latencies.push(performance.now() - scheduled);
            if (!ok) failed += 1;
          }),
        );
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  const cpuUs = ((cpuTimeMs(pid) - cpuBefore) * 1000) / total;
  if (failed > 0) console.warn(`  ${failed} calls failed at ${rate}/s`);
  return { latencies: latencies.sort((a, b) => a - b), cpuUs };
}

/** nginx proxying gRPC to the app over h2c (`grpc_pass`), upstream connections kept. */
const startReferenceNginx = (dir: string, appPort: number) =>
  startNginx(
    dir,
    (port) => `  upstream app { server 127.0.0.1:${appPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port} http2;
    http2_max_requests 1000000;
    location / { grpc_pass grpc://app; }
  }`,
  );

const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-grpc-'));
const children: ChildProcess[] = [];
const clients: grpc.Client[] = [];
try {
  const app = await startProcess(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'bench/grpc/app.ts')],
    /listening on (http:\/\/\S+)/,
  );
  children.push(app.proc);
  const appUrl = app.line.slice('listening on '.length);
  const appPort = Number(new URL(appUrl).port);
  const nginx = await startReferenceNginx(dir, appPort);
  children.push(nginx.proc);

  const [adminPort, ingressPort, egressPort] = [await freePort(), await freePort(), await freePort()];
  const configFile = join(dir, 'sidecar.json');
  await writeFile(
    configFile,
    JSON.stringify({
      admin: { host: '127.0.0.1', port: adminPort },
      ingress: { host: '127.0.0.1', port: ingressPort, target: appUrl, targetProtocol: 'http2' },
      egress: {
        host: '127.0.0.1',
        port: egressPort,
        services: { echo: { endpoints: [appUrl], protocol: 'http2' } },
      },
      log: { level: 'warn' },
      shutdown: { drainDelayMs: 0 },
    }),
  );
  const sidecar = spawn(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, join(repoRoot, 'dist/services/sidecar/bin.js'), '--config', configFile],
    {
      cwd: repoRoot,
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  children.push(sidecar);
  await waitUntilOk(`http://127.0.0.1:${adminPort}/readyz`, 'sidecar', sidecar);

  const client = (port: number, authority?: string) => {
    const made = new grpc.Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
      authority ? { 'grpc.default_authority': authority } : {},
    );
    clients.push(made);
    return made;
  };
  const targets: Target[] = [
    { name: 'direct (grpc-js app)', client: client(appPort), pid: app.proc.pid! },
    { name: 'nginx 1.22 grpc_pass (1 worker)', client: client(nginx.port), pid: nginx.proc.pid! },
    { name: 'sidecar ingress (targetProtocol: http2)', client: client(ingressPort), pid: sidecar.pid! },
    { name: 'sidecar egress (protocol: http2)', client: client(egressPort, 'echo'), pid: sidecar.pid! },
  ];
  // Warm-up: connections, JIT.
  for (const target of targets) {
    for (let i = 0; i < 2000; i += 1)
      if (!(await call(target.client))) throw new Error(`${target.name} fails`);
  }

  const rounds = new Map(
    targets.map((t) => [
      t.name,
      { peak: [] as number[], p50: [] as number[], p99: [] as number[], cpu: [] as number[] },
    ]),
  );
  for (let round = 1; round <= roundCount; round += 1) {
    for (const target of targets) {
      const figures = rounds.get(target.name)!;
      figures.peak.push(await peak(target.client));
      const { latencies, cpuUs } = await fixedRate(target.client, target.pid);
      figures.p50.push(percentile(latencies, 50));
      figures.p99.push(percentile(latencies, 99));
      figures.cpu.push(cpuUs);
      console.error(`round ${round}/${roundCount}: measured ${target.name}`);
    }
  }
  const median = (list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  const result = new Map(
    [...rounds].map(([name, f]) => [
      name,
      { peak: median(f.peak), p50: median(f.p50), p99: median(f.p99), cpu: median(f.cpu) },
    ]),
  );
  const direct = result.get(targets[0].name)!;
  const reference = result.get(targets[1].name)!;
  const referenceAddedP99 = reference.p99 - direct.p99;
  console.log(
    `\n${durationS}s per run, median of ${roundCount} interleaved rounds, peak with ${concurrency} calls in flight, fixed rate ${rate} calls/s, 64-byte messages\n`,
  );
  console.log(
    '| target | peak calls/s | peak vs nginx | p50 @rate (ms) | p99 @rate (ms) | added p50 (ms) | added p99 (ms) | added p99 vs nginx | proxy CPU µs/call @rate |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const { name } of targets) {
    const r = result.get(name)!;
    const isDirect = name === targets[0].name;
    const addedP99 = r.p99 - direct.p99;
    console.log(
      `| ${name} | ${Math.round(r.peak)} | ${(r.peak / reference.peak).toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${
        isDirect ? '–' : (r.p50 - direct.p50).toFixed(2)
      } | ${isDirect ? '–' : addedP99.toFixed(2)} | ${
        isDirect ? '–' : referenceAddedP99 > 0 ? (addedP99 / referenceAddedP99).toFixed(2) : 'n/a'
      } | ${isDirect ? '–' : Math.round(r.cpu)} |`,
    );
  }
} finally {
  for (const made of clients) made.close();
  for (const child of children) child.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

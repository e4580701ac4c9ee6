/**
 * Egress benchmark: a client calling the demo backend directly, through haproxy from Debian as the
 * reference proxy, and through the sidecar's egress listener (the real process built into `dist/`),
 * all in one run on this machine.
 *
 *   npm run build && npx tsx bench/egress/run.ts [--duration 10] [--rate 1000] [--connections 50] [--rounds 3]
 *   npx tsx bench/egress/run.ts --profile [--duration 10]   # CPU profile of the sidecar at peak load
 *
 * Two measurements per target: peak throughput with autocannon (closed loop, `connections`
 * keep-alive connections), and latency at a fixed rate with the open-loop generator of bench/lib.ts
 * (not autocannon's `overallRate`, which sends each second's quota as a closed-loop burst: see
 * `openLoop`), with the CPU time the proxy process spent per request at that rate (from /proc, the
 * figure least disturbed by other load on the machine). Added latency = proxy percentile − direct
 * percentile. Every request carries `Host: backend`, the name of the sidecar's egress service (the
 * others ignore it).
 *
 * The sidecar runs at log level `warn` (no access log, so the bench measures the proxy rather than
 * the pipe to this process); at that level it does not log its bound URLs, so its ports are picked
 * here and written into its config, and readiness is polled on the admin `/readyz`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../../scripts/lib/ports.js';
import { cpuTimeMs, openLoop, percentile, waitUntilOk } from '../lib.js';

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { average: number };
  latency: { p50: number; p99: number };
}
/** autocannon's run: a promise of the result that is also an emitter of per-response events. */
type AutocannonRun = Promise<AutocannonResult> & {
  on(
    event: 'response',
    listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void,
  ): void;
};
const autocannon = createRequire(import.meta.url)('autocannon') as (options: {
  url: string;
  connections: number;
  duration: number;
  overallRate?: number;
  headers?: Record<string, string>;
}) => AutocannonRun;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    profile: { type: 'boolean', default: false },
  },
});
const roundCount = Number(values.rounds);
const duration = Number(values.duration);
const rate = Number(values.rate);
const connections = Number(values.connections);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const sidecarBin = join(repoRoot, 'dist/services/sidecar/bin.js');
const backendBin = join(repoRoot, 'dist/services/demo-backend/server.js');
/** The egress service name; every request says `Host: backend`. */
const SERVICE = 'backend';

interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of the proxy process per request (µs); at the fixed rate only. */
  cpuUs: number;
}

const ms = (value: number) => value.toFixed(2);

/** Median of each figure separately. */
function median(measurements: readonly Measurement[]): Measurement {
  const of = (pick: (m: Measurement) => number) => {
    const sorted = measurements.map(pick).sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  return { rps: of((m) => m.rps), p50: of((m) => m.p50), p99: of((m) => m.p99), cpuUs: of((m) => m.cpuUs) };
}

/** Peak throughput: one closed-loop autocannon run. */
async function peak(url: string): Promise<Measurement> {
  const result = await autocannon({ url, connections, duration, headers: { host: SERVICE } });
  const errors = result.errors + result.timeouts + result.non2xx;
  if (errors > 0) console.warn(`  ${url}: ${errors} errors/timeouts/non-2xx`);
  return { rps: result.requests.average, p50: Number.NaN, p99: Number.NaN, cpuUs: Number.NaN };
}

/** Latency at the fixed rate (open loop), and the CPU time `pid` spent per request meanwhile. */
async function fixedRate(url: string, pid: number): Promise<Measurement> {
  const before = cpuTimeMs(pid);
  const result = await openLoop({ url, rate, durationS: duration, headers: { host: SERVICE } });
  const cpuUs = ((cpuTimeMs(pid) - before) * 1000) / result.sent;
  if (result.errors > 0) console.warn(`  ${url}: ${result.errors} errors/non-2xx at ${rate} req/s`);
  const times = result.latenciesMs;
  return { rps: result.sent / duration, p50: percentile(times, 50), p99: percentile(times, 99), cpuUs };
}

function startBackend(): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [backendBin, '--port', '0'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolve({ proc, url: match[1] });
    });
    proc.once('exit', (code) => reject(new Error(`demo backend exited ${code}: ${out}`)));
  });
}

async function startHaproxy(dir: string, backendPort: number): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  // One thread, as the sidecar is one Node.js thread; keep-alive both ways, connections to the
  // backend reused across client connections, X-Forwarded-For added as the sidecar does.
  await writeFile(
    conf,
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend egress
  bind 127.0.0.1:${port}
  default_backend app
backend app
  server app1 127.0.0.1:${backendPort}
`,
  );
  const proc = spawn('haproxy', ['-db', '-f', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilOk(`${url}/hello`, 'haproxy', proc);
  return { url, proc };
}

interface SidecarRun {
  readonly url: string;
  readonly proc: ChildProcess;
  /** SIGTERM, then waits for the exit (a graceful exit writes the CPU profile). */
  stop(): Promise<void>;
}

async function startSidecar(
  dir: string,
  name: string,
  service: Record<string, unknown>,
  nodeArgs: string[] = [],
): Promise<SidecarRun> {
  const [adminPort, egressPort] = [await freePort(), await freePort()];
  const configFile = join(dir, `${name}.json`);
  await writeFile(
    configFile,
    JSON.stringify({
      admin: { host: '127.0.0.1', port: adminPort },
      ingress: { enabled: false },
      egress: { host: '127.0.0.1', port: egressPort, services: { [SERVICE]: service } },
      log: { level: 'warn' },
      shutdown: { drainDelayMs: 0 },
    }),
  );
  const proc = spawn(process.execPath, [...nodeArgs, sidecarBin, '--config', configFile], {
    cwd: repoRoot,
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitUntilOk(`http://127.0.0.1:${adminPort}/readyz`, `sidecar ${name}`, proc);
  return {
    url: `http://127.0.0.1:${egressPort}`,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Self time per function of a V8 `.cpuprofile`, largest first. */
async function topSelfTime(file: string, count: number): Promise<string[]> {
  interface ProfileNode {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  const profile = JSON.parse(await readFile(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    totalUs += delta;
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.replace(/^file:\/\//, '').replace(repoRoot, '');
    const key = `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + delta);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, us]) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${key}`);
}

const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-egress-'));
const children: ChildProcess[] = [];
const sidecars: SidecarRun[] = [];
try {
  const backend = await startBackend();
  children.push(backend.proc);
  const backendPort = Number(new URL(backend.url).port);

  if (values.profile) {
    const profileDir = join(dir, 'profile');
    const sidecar = await startSidecar(dir, 'profiled', { endpoints: [backend.url] }, [
      '--cpu-prof',
      '--cpu-prof-dir',
      profileDir,
    ]);
    sidecars.push(sidecar);
    await peak(`${sidecar.url}/hello`);
    await sidecar.stop();
    const [file] = (await readdir(profileDir)).filter((name) => name.endsWith('.cpuprofile'));
    console.log(`\nsidecar egress, ${duration} s at peak load (JIT warm-up included): top self time\n`);
    for (const line of await topSelfTime(join(profileDir, file), 30)) console.log(line);
  } else {
    const haproxy = await startHaproxy(dir, backendPort);
    children.push(haproxy.proc);
    const plain = await startSidecar(dir, 'plain', { endpoints: [backend.url] });
    sidecars.push(plain);
    // A 90/10 split over two groups (both on the same backend): what the weighted choice costs.
    const split = await startSidecar(dir, 'split', {
      split: {
        stable: { weight: 90, endpoints: [backend.url] },
        canary: { weight: 10, endpoints: [backend.url] },
      },
    });
    sidecars.push(split);

    // [name, url, pid of the process whose CPU time is counted]
    const targets: [string, string, number][] = [
      ['direct (demo backend)', `${backend.url}/hello`, backend.proc.pid!],
      ['haproxy 2.6 (1 thread, keep-alive upstream)', `${haproxy.url}/hello`, haproxy.proc.pid!],
      ['sidecar egress (default policies)', `${plain.url}/hello`, plain.proc.pid!],
      ['sidecar egress, 90/10 split', `${split.url}/hello`, split.proc.pid!],
    ];
    for (const [, url] of targets) await peak(url); // warm-up (JIT, pools)
    // Rounds interleave the targets, so a burst of other load on the machine hits all of them; each
    // figure is the median over the rounds.
    const rounds = new Map<string, { peak: Measurement[]; fixed: Measurement[] }>(
      targets.map(([name]) => [name, { peak: [], fixed: [] }]),
    );
    for (let round = 1; round <= roundCount; round += 1) {
      for (const [name, url, pid] of targets) {
        rounds.get(name)!.peak.push(await peak(url));
        rounds.get(name)!.fixed.push(await fixedRate(url, pid));
        console.error(`round ${round}/${roundCount}: measured ${name}`);
      }
    }
    const results = new Map(
      [...rounds].map(([name, { peak, fixed }]) => [name, { peak: median(peak), fixed: median(fixed) }]),
    );
    const direct = results.get(targets[0][0])!;
    const reference = results.get(targets[1][0])!;
    const added = (m: Measurement) => ({ p50: m.p50 - direct.fixed.p50, p99: m.p99 - direct.fixed.p99 });
    const referenceAdded = added(reference.fixed);
    console.log(
      `\n${duration}s per run, median of ${roundCount} interleaved rounds, peak with ${connections} connections, fixed rate ${rate} req/s\n`,
    );
    console.log(
      '| target | peak req/s | peak vs haproxy | p50 @rate (ms) | p99 @rate (ms) | added p50 (ms) | added p99 (ms) | added p99 vs haproxy | CPU µs/req @rate |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const [name] of targets) {
      const { peak, fixed } = results.get(name)!;
      const a = added(fixed);
      const isDirect = name === targets[0][0];
      const vsReference =
        referenceAdded.p99 > 0
          ? (a.p99 / referenceAdded.p99).toFixed(2)
          : `n/a (haproxy adds ${ms(referenceAdded.p99)})`;
      console.log(
        `| ${name} | ${Math.round(peak.rps)} | ${(peak.rps / reference.peak.rps).toFixed(2)} | ${ms(fixed.p50)} | ${ms(fixed.p99)} | ${
          isDirect ? '–' : ms(a.p50)
        } | ${isDirect ? '–' : ms(a.p99)} | ${isDirect ? '–' : vsReference} | ${Math.round(fixed.cpuUs)} |`,
      );
    }
  }
} finally {
  for (const sidecar of sidecars) await sidecar.stop().catch(() => undefined);
  for (const child of children) child.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

/**
 * Egress benchmark: a client calling the demo backend directly, through haproxy from Debian as the
 * reference proxy, through two floors (a bare node:http + undici forwarder, bench/bare-forwarder.ts:
 * the floor of a Node.js HTTP proxy on this machine; a TCP pipe with no HTTP, bench/pipe-forwarder.ts:
 * the floor of any Node.js process on the path) and through the sidecar's egress listener (the real
 * process built into `dist/`), all in one run.
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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../../scripts/lib/ports.js';
import { waitUntilOk } from '../lib.js';
import {
  BARE_FORWARDER,
  PIPE_FORWARDER,
  measureInterleaved,
  peak,
  printTable,
  startFloor,
  type Target,
} from '../proxy-bench.js';
import { SIDECAR_NODE_FLAGS } from '../../services/sidecar/node-flags.js';

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

const bench = { duration, rate, connections, headers: { host: SERVICE } };

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
  const proc = spawn(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, ...nodeArgs, sidecarBin, '--config', configFile],
    {
      cwd: repoRoot,
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
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
    await peak(bench, `${sidecar.url}/hello`);
    await sidecar.stop();
    const [file] = (await readdir(profileDir)).filter((name) => name.endsWith('.cpuprofile'));
    console.log(`\nsidecar egress, ${duration} s at peak load (JIT warm-up included): top self time\n`);
    for (const line of await topSelfTime(join(profileDir, file), 30)) console.log(line);
  } else {
    const haproxy = await startHaproxy(dir, backendPort);
    children.push(haproxy.proc);
    const bare = await startFloor('http', backend.url);
    children.push(bare.proc);
    const pipe = await startFloor('pipe', backend.url);
    children.push(pipe.proc);
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
    const targets: Target[] = [
      ['direct (demo backend)', `${backend.url}/hello`, backend.proc.pid!],
      ['haproxy 2.6 (1 thread, keep-alive upstream)', `${haproxy.url}/hello`, haproxy.proc.pid!],
      [PIPE_FORWARDER, `${pipe.url}/hello`, pipe.proc.pid!],
      [BARE_FORWARDER, `${bare.url}/hello`, bare.proc.pid!],
      ['sidecar egress (default policies)', `${plain.url}/hello`, plain.proc.pid!],
      ['sidecar egress, 90/10 split', `${split.url}/hello`, split.proc.pid!],
    ];
    const results = await measureInterleaved(bench, targets, roundCount);
    printTable({ ...bench, roundCount, referenceLabel: 'haproxy' }, targets, results);
  }
} finally {
  for (const sidecar of sidecars) await sidecar.stop().catch(() => undefined);
  for (const child of children) child.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

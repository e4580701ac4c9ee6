/**
 * Ingress benchmark: the demo backend called directly, through the sidecar's ingress (forward only,
 * and with OpenAPI validation plus a rate-limit rule that never trips), through nginx from Debian as
 * a reference proxy, and through two floors: a bare node:http + undici forwarder
 * (bench/bare-forwarder.ts: the floor of a Node.js HTTP proxy on this machine) and a TCP pipe with no
 * HTTP at all (bench/pipe-forwarder.ts: the floor of any Node.js process on the path), all in one run.
 *
 *   npx tsx bench/ingress/run.ts [--duration 10] [--rate 1000] [--connections 50] [--rounds 3]
 *     [--baseline-ref <git ref>]
 *
 * Two measurements per target: peak throughput with autocannon (closed loop, `connections`
 * keep-alive connections), and latency at a fixed rate with the open-loop generator of bench/lib.ts
 * (not autocannon's `overallRate`, which sends each second's quota as a closed-loop burst: see
 * `openLoop`), with the CPU time the proxy process spent per request at that rate (from /proc, the
 * figure least disturbed by other load on the machine). Added latency = proxy percentile − direct
 * percentile. Targets are interleaved over the rounds; each figure is the median of its rounds.
 *
 * `--baseline-ref` adds the forward-only sidecar as built from that commit (checked out into a
 * temporary git worktree, compiled with tsc) and, for like with like, the working tree's build
 * (dist/, compiled in the run too); the ratios of the two show what the hot path costs now against
 * then with none of the newer rules configured.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { stringify } from 'yaml';
import { startSidecarProcess, type SidecarProcess } from '../../integration/helpers/sidecar-process.js';
import { startNginx, startProcess } from '../lib.js';
import {
  BARE_FORWARDER,
  PIPE_FORWARDER,
  measureInterleaved,
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
    'baseline-ref': { type: 'string' },
  },
});
const baselineRef = values['baseline-ref'];
const roundCount = Number(values.rounds);
const duration = Number(values.duration);
const rate = Number(values.rate);
const connections = Number(values.connections);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

const bench = { duration, rate, connections };

/** nginx in front of the backend, keep-alive both ways, X-Forwarded-For added as the sidecar does. */
const startReferenceNginx = (dir: string, backendPort: number) =>
  startNginx(
    dir,
    (
      port,
    ) => `  # nginx closes a client connection after 1,000 requests by default; Node's server (the sidecar, the
  # bare forwarder) never does, and the benchmark's clients count a request cut by such a close as an error.
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:${backendPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }`,
  );

const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-ingress-'));
const children: ChildProcess[] = [];
const sidecars: SidecarProcess[] = [];
const git = (...args: string[]) => promisify(execFile)('git', ['-C', repoRoot, ...args]);
const worktree = join(dir, 'baseline');
try {
  if (baselineRef !== undefined) {
    await git('worktree', 'add', '--detach', worktree, baselineRef);
    await symlink(join(repoRoot, 'node_modules'), join(worktree, 'node_modules'));
    for (const root of [repoRoot, worktree]) {
      await promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root });
    }
  }
  const backend = await startProcess(
    process.execPath,
    ['--import', 'tsx', 'services/demo-backend/server.ts', '--port', '0'],
    /listening on (http:\/\/\S+)/,
  );
  children.push(backend.proc);
  const backendUrl = /http:\/\/\S+/.exec(backend.line)![0];
  const backendPort = Number(new URL(backendUrl).port);
  const nginx = await startReferenceNginx(dir, backendPort);
  children.push(nginx.proc);
  const bare = await startFloor('http', backendUrl);
  children.push(bare.proc);
  const pipe = await startFloor('pipe', backendUrl);
  children.push(pipe.proc);
  const sidecarConfig = (ingress: Record<string, unknown>) => ({
    admin: { host: '127.0.0.1', port: 0 },
    ingress: { host: '127.0.0.1', port: 0, target: backendUrl, ...ingress },
    log: { level: 'info' },
    shutdown: { drainDelayMs: 0 },
  });
  /**
   * Starts a sidecar at log level info (its start-up line carries the bound URLs), then turns the
   * per-request access log off with a SIGHUP reload to `warn`, so the bench measures the proxy,
   * not the pipe to this process.
   */
  const startQuietSidecar = async (ingress: Record<string, unknown>, builtIn?: string) => {
    const config = sidecarConfig(ingress);
    let sidecar: Pick<SidecarProcess, 'proc' | 'urls' | 'rewriteConfig'>;
    if (builtIn === undefined) {
      sidecars.push((sidecar = await startSidecarProcess(config)));
    } else {
      // The compiled CLI of the tree at `builtIn`, with the same config.
      const configFile = join(dir, `sidecar-${children.length}.yaml`);
      await writeFile(configFile, stringify(config));
      const bin = join(builtIn, 'dist/services/sidecar/bin.js');
      const started = await startProcess(
        process.execPath,
        [...SIDECAR_NODE_FLAGS, bin, '--config', configFile],
        /^\{.*"msg":"mesh-sidecar started".*$/m,
      );
      children.push(started.proc);
      const { listeners } = JSON.parse(started.line) as { listeners: Record<string, string> };
      sidecar = {
        proc: started.proc,
        urls: listeners,
        rewriteConfig: (next) => writeFile(configFile, stringify(next)),
      };
    }
    await sidecar.rewriteConfig({ ...config, log: { level: 'warn' } });
    sidecar.proc.kill('SIGHUP');
    for (let i = 0; ; i += 1) {
      const metrics = await (await fetch(`${sidecar.urls.admin}/metrics`)).text();
      if (/^mesh_config_reloads_total\{result="success"\} 1$/m.test(metrics)) break;
      if (i > 200) throw new Error('the sidecar did not reload to log level warn');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return sidecar;
  };
  const plain = await startQuietSidecar({});
  const validating = await startQuietSidecar({
    openapi: join(repoRoot, 'bench/ingress/hello.yaml'),
    openapiStrict: true,
    rateLimits: [{ requestsPerSecond: 1e9, burst: 1e9 }],
  });

  // [name, url, pid of the process whose CPU time is counted (nginx: the master and its worker)]
  const targets: Target[] = [
    ['direct (demo backend)', `${backendUrl}/hello`, backend.proc.pid!],
    ['nginx 1.22 (1 worker, keep-alive upstream)', `${nginx.url}/hello`, nginx.proc.pid!],
    [PIPE_FORWARDER, `${pipe.url}/hello`, pipe.proc.pid!],
    [BARE_FORWARDER, `${bare.url}/hello`, bare.proc.pid!],
    ['sidecar ingress, forward only', `${plain.urls.ingress}/hello`, plain.proc.pid!],
    [
      'sidecar ingress, OpenAPI strict + rate limit',
      `${validating.urls.ingress}/hello?lang=en`,
      validating.proc.pid!,
    ],
  ];
  const nowName = 'sidecar ingress (dist/), forward only';
  const beforeName = `sidecar @${baselineRef}, forward only`;
  if (baselineRef !== undefined) {
    for (const [name, root] of [
      [nowName, repoRoot],
      [beforeName, worktree],
    ]) {
      const sidecar = await startQuietSidecar({}, root);
      targets.push([name, `${sidecar.urls.ingress}/hello`, sidecar.proc.pid!]);
    }
  }
  const results = await measureInterleaved(bench, targets, roundCount);
  const added = printTable({ ...bench, roundCount, referenceLabel: 'nginx' }, targets, results);
  if (baselineRef !== undefined) {
    const now = results.get(nowName)!;
    const before = results.get(beforeName)!;
    const ratio = (label: string, a: number, b: number, unit: string, digits: number) =>
      `${label} ${(a / b).toFixed(2)} (${a.toFixed(digits)} / ${b.toFixed(digits)}${unit})`;
    console.log(
      `\nunconfigured hot path now / before (dist/ vs @${baselineRef}): ${[
        ratio('peak req/s', now.peak.rps, before.peak.rps, '', 0),
        ratio('added p50', added(now.fixed).p50, added(before.fixed).p50, ' ms', 2),
        ratio('added p99', added(now.fixed).p99, added(before.fixed).p99, ' ms', 2),
        ratio('CPU µs/req', now.fixed.cpuUs, before.fixed.cpuUs, '', 0),
      ].join(', ')}`,
    );
  }
} finally {
  for (const sidecar of sidecars) await sidecar.cleanup();
  for (const child of children) child.kill('SIGTERM');
  if (baselineRef !== undefined) await git('worktree', 'remove', '--force', worktree).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

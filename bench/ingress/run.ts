/**
 * Ingress benchmark: the demo backend called directly, through the sidecar's ingress (forward only,
 * and with OpenAPI validation plus a rate-limit rule that never trips), and through nginx from
 * Debian as a reference proxy, all in one run on this machine.
 *
 *   npx tsx bench/ingress/run.ts [--duration 10] [--rate 1000] [--connections 50]
 *
 * Two measurements per target, with autocannon: peak throughput (closed loop, `connections`
 * keep-alive connections) and latency at a fixed rate (`overallRate`, open-loop pacing so slow
 * answers do not slow the offered load). Added latency = proxy percentile − direct percentile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSidecarProcess, type SidecarProcess } from '../../integration/helpers/sidecar-process.js';

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { average: number };
  latency: { p50: number; p99: number };
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: {
  url: string;
  connections: number;
  duration: number;
  overallRate?: number;
}) => Promise<AutocannonResult>;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '50' },
  },
});
const duration = Number(values.duration);
const rate = Number(values.rate);
const connections = Number(values.connections);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

interface Measurement {
  rps: number;
  p50: number;
  p99: number;
}

async function load(url: string, options: { overallRate?: number }): Promise<Measurement> {
  const result = await autocannon({
    url,
    connections: options.overallRate ? Math.max(10, Math.ceil(options.overallRate / 100)) : connections,
    duration,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
  });
  const errors = result.errors + result.timeouts + result.non2xx;
  if (errors > 0) console.warn(`  ${url}: ${errors} errors/timeouts/non-2xx`);
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 };
}

function startProcess(
  command: string,
  args: string[],
  ready: RegExp,
): Promise<{ proc: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = ready.exec(out);
      if (match) resolve({ proc, line: match[0] });
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`${command} exited ${code}: ${out}`)));
  });
}

async function startNginx(dir: string, backendPort: number): Promise<{ url: string; proc: ChildProcess }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${backendPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`,
  );
  const proc = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i += 1) {
    try {
      if ((await fetch(`${url}/hello`)).ok) return { url, proc };
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('nginx did not come up');
}

const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-ingress-'));
const children: ChildProcess[] = [];
const sidecars: SidecarProcess[] = [];
try {
  const backend = await startProcess(
    process.execPath,
    ['--import', 'tsx', 'services/demo-backend/server.ts', '--port', '0'],
    /listening on (http:\/\/\S+)/,
  );
  children.push(backend.proc);
  const backendUrl = /http:\/\/\S+/.exec(backend.line)![0];
  const backendPort = Number(new URL(backendUrl).port);
  const nginx = await startNginx(dir, backendPort);
  children.push(nginx.proc);
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
  const startQuietSidecar = async (ingress: Record<string, unknown>) => {
    const config = sidecarConfig(ingress);
    const sidecar = await startSidecarProcess(config);
    sidecars.push(sidecar);
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

  const targets: [string, string][] = [
    ['direct (demo backend)', `${backendUrl}/hello`],
    ['nginx 1.22 (1 worker, keep-alive upstream)', `${nginx.url}/hello`],
    ['sidecar ingress, forward only', `${plain.urls.ingress}/hello`],
    ['sidecar ingress, OpenAPI strict + rate limit', `${validating.urls.ingress}/hello?lang=en`],
  ];
  for (const [, url] of targets) await load(url, {}); // warm-up (JIT, pools)
  const results = new Map<string, { peak: Measurement; fixed: Measurement }>();
  for (const [name, url] of targets) {
    const peak = await load(url, {});
    const fixed = await load(url, { overallRate: rate });
    results.set(name, { peak, fixed });
    console.error(`measured ${name}`);
  }
  const direct = results.get(targets[0][0])!;
  const nginxResult = results.get(targets[1][0])!;
  const added = (m: Measurement) => ({ p50: m.p50 - direct.fixed.p50, p99: m.p99 - direct.fixed.p99 });
  const nginxAdded = added(nginxResult.fixed);
  console.log(
    `\nduration ${duration}s per run, peak with ${connections} connections, fixed rate ${rate} req/s\n`,
  );
  console.log(
    '| target | peak req/s | peak vs nginx | p50 @rate (ms) | p99 @rate (ms) | added p50 (ms) | added p99 (ms) | added p99 vs nginx |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [name] of targets) {
    const { peak, fixed } = results.get(name)!;
    const a = added(fixed);
    const isDirect = name === targets[0][0];
    console.log(
      `| ${name} | ${Math.round(peak.rps)} | ${(peak.rps / nginxResult.peak.rps).toFixed(2)} | ${fixed.p50} | ${fixed.p99} | ${
        isDirect ? '–' : a.p50
      } | ${isDirect ? '–' : a.p99} | ${isDirect ? '–' : nginxAdded.p99 > 0 ? (a.p99 / nginxAdded.p99).toFixed(2) : 'n/a'} |`,
    );
  }
} finally {
  for (const sidecar of sidecars) await sidecar.cleanup();
  for (const child of children) child.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

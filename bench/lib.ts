/** Small helpers shared by the benchmarks in bench/ (not used by tests). */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../scripts/lib/ports.js';
import { SIDECAR_NODE_FLAGS } from '../services/sidecar/node-flags.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

/** Nearest-rank percentile of an ascending array; NaN when it is empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Polls `url` until it answers 2xx (up to 60 s), failing at once if `proc` exits first. */
export async function waitUntilOk(url: string, what: string, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) {
      throw new Error(`${what} exited with ${String(proc.exitCode ?? proc.signalCode)}`);
    }
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not come up (${url})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface OpenLoopOptions {
  /** `http://host:port/path` (plain HTTP/1.1, keep-alive). */
  readonly url: string;
  /** Requests per second, sent at an even pace. */
  readonly rate: number;
  readonly durationS: number;
  /** Extra request headers (`Host` overrides the URL's authority). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Connections opened up front; more are opened whenever every one is busy. */
  readonly connections?: number;
}

export interface OpenLoopResult {
  /** Latencies in ms, ascending: from the moment a request was due to the end of its response. */
  readonly latenciesMs: number[];
  readonly sent: number;
  /** Non-2xx answers and connection errors. */
  readonly errors: number;
  /** Connections the run needed (those opened up front included). */
  readonly connections: number;
}

/**
 * An open-loop load generator at a fixed rate, what a "latency at N req/s" figure needs.
 *
 * autocannon's `overallRate` is not one: it gives each connection a quota per second and lets it
 * send back to back until the quota is used, so its "1,000 req/s over 10 connections" is a closed
 * loop of 10 concurrent requests for the first ~100 ms of every second, then silence; its latency
 * is then about 10 × the target's cost per request, not the latency one request sees at that rate.
 *
 * Here a 1 ms timer sends every request that is due, each on an idle keep-alive connection (a new
 * one when all are busy, so a slow answer never holds the next request back: no coordinated
 * omission). A request's latency runs from the tick that sent it to the last byte of its answer.
 * Raw sockets and a minimal response parser keep the generator's own CPU small on a shared box.
 */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const url = new URL(options.url);
  const port = Number(url.port || 80);
  const extra = { host: url.host, ...options.headers };
  const head = Object.entries(extra)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const request = Buffer.from(`GET ${url.pathname}${url.search} HTTP/1.1\r\n${head}\r\n`, 'latin1');
  const total = Math.round(options.rate * options.durationS);
  const latencies: number[] = [];
  let errors = 0;
  let opened = 0;
  let finished = 0;
  let onAllDone: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (onAllDone = resolve));
  const complete = (startedAt: number, ok: boolean) => {
    latencies.push(performance.now() - startedAt);
    if (!ok) errors += 1;
    finished += 1;
    if (finished === total) onAllDone();
  };

  interface Conn {
    socket: Socket;
    /** A request is out on it. */
    busy: boolean;
    startedAt: number;
    buffer: Buffer;
  }
  const idle: Conn[] = [];
  const all = new Set<Conn>();

  /** The length of the first whole response in `buffer` and whether it was 2xx, or undefined. */
  const parse = (buffer: Buffer): { length: number; ok: boolean } | undefined => {
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const header = buffer.toString('latin1', 0, end);
    const ok = header.charCodeAt(9) === 50; // "HTTP/1.1 2xx"
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(header);
    if (lengthMatch) {
      const length = end + 4 + Number(lengthMatch[1]);
      return buffer.length >= length ? { length, ok } : undefined;
    }
    if (/\r\ntransfer-encoding:\s*chunked/i.test(header)) {
      const last = buffer.indexOf('\r\n0\r\n\r\n', end + 2);
      return last < 0 ? undefined : { length: last + 7, ok };
    }
    return { length: end + 4, ok };
  };

  const open = (): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port, noDelay: true });
      const conn: Conn = { socket, busy: false, startedAt: 0, buffer: Buffer.alloc(0) };
      opened += 1;
      all.add(conn);
      socket.once('connect', () => resolve(conn));
      socket.on('data', (chunk: Buffer) => {
        conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
        const response = parse(conn.buffer);
        if (!response) return;
        conn.buffer = conn.buffer.subarray(response.length);
        conn.busy = false;
        idle.push(conn);
        complete(conn.startedAt, response.ok);
      });
      socket.on('error', reject);
      // A closed connection fails the request it carried and is not used again.
      socket.on('close', () => {
        all.delete(conn);
        const index = idle.indexOf(conn);
        if (index >= 0) idle.splice(index, 1);
        if (conn.busy) {
          conn.busy = false;
          complete(conn.startedAt, false);
        }
      });
    });
  const send = (conn: Conn, startedAt: number) => {
    conn.busy = true;
    conn.startedAt = startedAt;
    conn.socket.write(request);
  };

  for (const conn of await Promise.all(Array.from({ length: options.connections ?? 16 }, open))) {
    idle.push(conn);
  }
  const begin = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - begin) * options.rate) / 1000) + 1);
      while (sent < due) {
        sent += 1;
        const conn = idle.pop();
        if (conn) send(conn, now);
        else
          open().then(
            (fresh) => send(fresh, now),
            () => complete(now, false),
          );
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await allDone;
  for (const conn of all) conn.socket.destroy();
  latencies.sort((a, b) => a - b);
  return { latenciesMs: latencies, sent, errors, connections: opened };
}

/** Milliseconds per clock tick of /proc (USER_HZ is 100 on Linux). */
const MS_PER_TICK = 10;

/**
 * CPU time (user + system, ms) of a process and of its direct children (nginx's worker) so far,
 * from /proc: divided by the requests served in between, the cost per request, which the other
 * load on a shared machine disturbs far less than latency or throughput.
 */
export function cpuTimeMs(pid: number): number {
  const of = (id: number) => {
    try {
      const fields = readFileSync(`/proc/${id}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children file: count the process alone
  }
  return of(pid) + children.reduce((sum, child) => sum + of(child), 0);
}

/**
 * The hypervisor's steal time so far (ms, all CPUs together) from /proc/stat: time this VM's vCPUs
 * wanted to run while the host ran something else. A process on a stolen vCPU stops for a scheduler
 * slice of the host (milliseconds), which is what a proxy's p99 at a modest rate is made of on a
 * shared machine. 0 where the kernel does not report it.
 */
export function stealTimeMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/);
  // cpu user nice system idle iowait irq softirq steal …, in clock ticks
  return Number(fields[8] ?? 0) * MS_PER_TICK;
}

export interface BridgeSidecar {
  readonly proc: ChildProcess;
  readonly bridgeUrl: string;
  /** SIGTERM, resolved once the process has exited. */
  stop(): Promise<void>;
}

/**
 * A real sidecar process with only the bridge on (log level warn), ready when this resolves. Ports
 * are chosen here: at level warn the sidecar does not log the addresses it bound. `bin` picks the
 * compiled build or the sources through tsx; BENCH_SIDECAR_NODE_ARGS (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof") profiles it.
 */
export async function startBridgeSidecar(options: {
  readonly workDir: string;
  readonly bootstrap: string;
  readonly bin: 'dist' | 'tsx';
  readonly bridge?: Record<string, unknown>;
}): Promise<BridgeSidecar> {
  const adminPort = await freePort();
  const bridgePort = await freePort();
  const configFile = join(options.workDir, 'sidecar.yaml');
  await writeFile(
    configFile,
    stringify({
      admin: { host: '127.0.0.1', port: adminPort },
      ingress: { enabled: false },
      kafka: { bootstrap: [options.bootstrap] },
      bridge: { enabled: true, port: bridgePort, ...options.bridge },
      log: { level: 'warn' },
      shutdown: { drainDelayMs: 0 },
    }),
  );
  const entry =
    options.bin === 'dist'
      ? [join(repoRoot, 'dist/services/sidecar/bin.js')]
      : ['--import', 'tsx', join(repoRoot, 'services/sidecar/bin.ts')];
  const proc = spawn(
    process.execPath,
    [
      ...SIDECAR_NODE_FLAGS,
      ...(process.env.BENCH_SIDECAR_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      ...entry,
      '--config',
      configFile,
    ],
    { cwd: repoRoot, env: { ...process.env }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  await waitUntilOk(`http://127.0.0.1:${adminPort}/readyz`, 'sidecar', proc);
  return {
    proc,
    bridgeUrl: `http://127.0.0.1:${bridgePort}`,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Spawns `command` in the repository root and resolves once its output (stdout or stderr) matches
 * `ready`, with the matched text; rejects if it exits first.
 */
export function startProcess(
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

/**
 * nginx from Debian as a reference proxy, one worker, on a free port, with its files in `dir`:
 * `http` is the body of its `http {}` block for that port (upstreams, `server`). Resolves once the
 * port accepts connections.
 */
export async function startNginx(
  dir: string,
  http: (port: number) => string,
): Promise<{ port: number; url: string; proc: ChildProcess }> {
  const port = await freePort();
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
${http(port)}
}
`,
  );
  const proc = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: 'inherit' });
  for (let i = 0; i < 100; i += 1) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return { port, url: `http://127.0.0.1:${port}`, proc };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  proc.kill('SIGTERM');
  throw new Error('nginx did not come up');
}

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { SIDECAR_NODE_FLAGS } from '../../services/sidecar/node-flags.js';
import type { CleanupStack } from './wait.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const binPath = join(repoRoot, 'services/sidecar/bin.ts');

export interface SidecarProcess {
  readonly proc: ChildProcess;
  readonly configFile: string;
  /** Bound listener URLs by name (`admin`, `ingress`, ...) from the start-up log line. */
  readonly urls: Record<string, string>;
  /** Every JSON log line so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
  rewriteConfig(config: unknown): Promise<void>;
  /** Resolves with the first log line that matches, waiting up to `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGKILLs the process if it still runs and removes its temp files. Safe to call twice. */
  cleanup(): Promise<void>;
}

/** Runs the real CLI (`tsx services/sidecar/bin.ts`) with a config written to a temp file. */
export async function startSidecarProcess(
  config: unknown,
  options: { env?: NodeJS.ProcessEnv; startTimeoutMs?: number } = {},
): Promise<SidecarProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-sidecar-test-'));
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, stringify(config));
  // Benchmarks profile the sidecar with e.g. BENCH_SIDECAR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = process.env['BENCH_SIDECAR_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const proc = spawn(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, ...nodeArgs, '--import', 'tsx', binPath, '--config', configFile],
    {
      cwd: repoRoot,
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: Record<string, unknown>[] = [];
  const waiters: {
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  let buffered = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: text, unparsed: true };
      }
      logs.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });

  const waitForLog = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no matching log line within ${timeoutMs} ms; stderr: ${stderr}; last logs: ${JSON.stringify(logs.slice(-5))}`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (line: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      waiters.push(waiter);
      void exited.then((code) => {
        if (!waiters.includes(waiter)) return;
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `sidecar exited (${code}) before the log line; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-5))}`,
          ),
        );
      });
    });
  };

  const cleanup = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const started = await waitForLog(
      (line) => line.msg === 'mesh-sidecar started',
      options.startTimeoutMs ?? 20_000,
    );
    return {
      proc,
      configFile,
      urls: started.listeners as Record<string, string>,
      logs,
      exited,
      rewriteConfig: (next: unknown) => writeFile(configFile, stringify(next)),
      waitForLog,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Runs the CLI to completion and collects its output (for check-config, --help, --version). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', binPath, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * startSidecarProcess with what most suites want besides their own sections: the admin listener
 * on a free port, no drain delay, a 5 s shutdown, log level info; stopped by `cleanup`.
 */
export async function startTestSidecar(
  cleanup: CleanupStack,
  config: Record<string, unknown>,
): Promise<SidecarProcess> {
  const sidecar = await startSidecarProcess({
    admin: { host: '127.0.0.1', port: 0 },
    shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
    log: { level: 'info' },
    ...config,
  });
  cleanup.defer(() => sidecar.cleanup());
  return sidecar;
}

/** The value of one series on the admin `/metrics` page (`labels` exactly as printed), 0 when absent. */
export async function metricValue(adminUrl: string, name: string, labels: string): Promise<number> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/**
 * Runs the real CLI with a config until it exits by itself (start-up failures), collecting its
 * output. SIGKILLs it after `timeoutMs`, so a sidecar that wrongly keeps running fails the test
 * instead of outliving it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const binPath = join(repoRoot, 'services/sidecar/bin.ts');

export interface SidecarExit {
  /** Exit code, or the signal name when it had to be killed. */
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout's JSON log lines, parsed (other lines kept as `{msg, unparsed: true}`). */
  readonly logs: Record<string, unknown>[];
  readonly timedOut: boolean;
}

export async function runSidecarUntilExit(
  config: unknown,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<SidecarExit> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-sidecar-exit-'));
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, stringify(config));
  try {
    const proc = spawn(process.execPath, ['--import', 'tsx', binPath, '--config', configFile], {
      cwd: repoRoot,
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    const code = await new Promise<number | string>((resolve) => {
      proc.once('close', (exitCode, signal) => resolve(exitCode ?? signal ?? 'unknown'));
    });
    clearTimeout(timer);
    const logs = stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return { msg: line, unparsed: true };
        }
      });
    return { code, stdout, stderr, logs, timedOut };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

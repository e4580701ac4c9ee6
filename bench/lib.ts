/** Small helpers shared by the benchmarks in bench/ (not used by tests). */
import type { ChildProcess } from 'node:child_process';

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

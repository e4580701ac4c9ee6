/**
 * What the ingress and egress benchmarks measure alike: per target, peak throughput (closed loop,
 * autocannon) and latency plus CPU per request at a fixed rate (open loop, `openLoop`), targets
 * interleaved over rounds with the median of each figure, printed as one table against a reference
 * proxy (nginx, haproxy) measured in the same run. A target's round during which the hypervisor
 * stole more than `MAX_STEAL_PCT` of the CPUs is taken again (at most `MAX_RETAKES` times), whatever
 * the target: see `stealTimeMs`.
 */
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { SIDECAR_NODE_FLAGS } from '../services/sidecar/node-flags.js';
import { cpuTimeMs, openLoop, percentile, startProcess, stealTimeMs } from './lib.js';

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { average: number };
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: {
  url: string;
  connections: number;
  duration: number;
  headers?: Record<string, string>;
}) => Promise<AutocannonResult>;

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of the proxy process per request (µs); at the fixed rate only. */
  cpuUs: number;
  /** Share of the CPUs the hypervisor stole during the run (%). */
  stealPct: number;
}

/**
 * Steal above this share of the CPUs during a round (its peak and fixed-rate runs together) has the
 * round taken again. Idle, this machine's steal is ~0.05 %; rounds with 1 % and more measured p99s
 * of several ms for every target, nginx and the direct call included.
 */
const MAX_STEAL_PCT = 0.5;
/** Retakes per target and round at most; then the last take counts (and the table shows its steal). */
const MAX_RETAKES = 2;

/** Runs `measure`, returning its result with the share of the CPUs stolen meanwhile. */
async function withSteal(durationS: number, measure: () => Promise<Measurement>): Promise<Measurement> {
  const before = stealTimeMs();
  const result = await measure();
  const stealPct = ((stealTimeMs() - before) / (durationS * 1000 * availableParallelism())) * 100;
  return { ...result, stealPct };
}

export interface ProxyBenchOptions {
  /** Seconds per run. */
  readonly duration: number;
  /** Requests per second of the fixed-rate run. */
  readonly rate: number;
  /** Keep-alive connections of the peak run. */
  readonly connections: number;
  readonly headers?: Record<string, string>;
}

/** [name, url, pid of the process whose CPU time is counted] */
export type Target = [string, string, number];

export const ms = (value: number) => value.toFixed(2);

/** Names of the two floors' rows in both benchmarks' tables. */
export const BARE_FORWARDER = 'bare node:http + undici forwarder (HTTP floor)';
export const PIPE_FORWARDER = 'Node.js TCP pipe, no HTTP (runtime floor)';

/**
 * Starts a floor next to the sidecar, in front of `origin`, with the sidecar's Node flags:
 * bench/bare-forwarder.ts (`http`, the floor of a Node.js HTTP proxy on this machine) or
 * bench/pipe-forwarder.ts (`pipe`, the floor of any Node.js process on the path).
 */
export async function startFloor(
  kind: 'http' | 'pipe',
  origin: string,
): Promise<{ url: string; proc: ChildProcess }> {
  const file = kind === 'http' ? './bare-forwarder.ts' : './pipe-forwarder.ts';
  const script = fileURLToPath(new URL(file, import.meta.url));
  const { proc, line } = await startProcess(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, '--import', 'tsx', script, origin],
    /listening on (http:\/\/\S+)/,
  );
  return { url: line.slice('listening on '.length), proc };
}

/** Peak throughput: one closed-loop autocannon run. */
export async function peak(options: ProxyBenchOptions, url: string): Promise<Measurement> {
  const { connections, duration, headers } = options;
  const result = await autocannon({ url, connections, duration, ...(headers ? { headers } : {}) });
  const errors = result.errors + result.timeouts + result.non2xx;
  if (errors > 0) console.warn(`  ${url}: ${errors} errors/timeouts/non-2xx`);
  return { rps: result.requests.average, p50: Number.NaN, p99: Number.NaN, cpuUs: Number.NaN, stealPct: 0 };
}

/** Latency at the fixed rate (open loop), and the CPU time `pid` (and its children) spent per request. */
async function fixedRate(options: ProxyBenchOptions, url: string, pid: number): Promise<Measurement> {
  const { rate, duration, headers } = options;
  const before = cpuTimeMs(pid);
  const result = await openLoop({ url, rate, durationS: duration, ...(headers ? { headers } : {}) });
  const cpuUs = ((cpuTimeMs(pid) - before) * 1000) / result.sent;
  if (result.errors > 0) console.warn(`  ${url}: ${result.errors} errors/non-2xx at ${rate} req/s`);
  const times = result.latenciesMs;
  return {
    rps: result.sent / duration,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    cpuUs,
    stealPct: 0,
  };
}

/** Median of each figure separately. */
function median(measurements: readonly Measurement[]): Measurement {
  const of = (pick: (m: Measurement) => number) => {
    const sorted = measurements.map(pick).sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  return {
    rps: of((m) => m.rps),
    p50: of((m) => m.p50),
    p99: of((m) => m.p99),
    cpuUs: of((m) => m.cpuUs),
    stealPct: of((m) => m.stealPct),
  };
}

export type Results = Map<string, { peak: Measurement; fixed: Measurement }>;

/**
 * Rounds interleave the targets, so a burst of other load on the machine hits all of them; each
 * figure is the median over the rounds. One peak run per target first warms JIT and pools.
 */
export async function measureInterleaved(
  options: ProxyBenchOptions,
  targets: readonly Target[],
  roundCount: number,
): Promise<Results> {
  for (const [, url] of targets) await peak(options, url);
  const rounds = new Map<string, { peak: Measurement[]; fixed: Measurement[] }>(
    targets.map(([name]) => [name, { peak: [], fixed: [] }]),
  );
  for (let round = 1; round <= roundCount; round += 1) {
    for (const [name, url, pid] of targets) {
      for (let take = 0; ; take += 1) {
        const peakRun = await withSteal(options.duration, () => peak(options, url));
        const fixedRun = await withSteal(options.duration, () => fixedRate(options, url, pid));
        const stealPct = (peakRun.stealPct + fixedRun.stealPct) / 2;
        if (stealPct > MAX_STEAL_PCT && take < MAX_RETAKES) {
          console.error(`round ${round}/${roundCount}: ${name} again (steal ${stealPct.toFixed(2)} %)`);
          continue;
        }
        rounds.get(name)!.peak.push(peakRun);
        rounds.get(name)!.fixed.push(fixedRun);
        console.error(`round ${round}/${roundCount}: measured ${name} (steal ${stealPct.toFixed(2)} %)`);
        break;
      }
    }
  }
  return new Map(
    [...rounds].map(([name, { peak, fixed }]) => [name, { peak: median(peak), fixed: median(fixed) }]),
  );
}

/**
 * Prints the table: targets[0] is the direct call (added latency is measured against it),
 * targets[1] the reference proxy called `referenceLabel` in the headings. Returns `added`.
 */
export function printTable(
  options: ProxyBenchOptions & { readonly roundCount: number; readonly referenceLabel: string },
  targets: readonly Target[],
  results: Results,
): (m: Measurement) => { p50: number; p99: number } {
  const { duration, roundCount, connections, rate, referenceLabel } = options;
  const direct = results.get(targets[0][0])!;
  const reference = results.get(targets[1][0])!;
  const added = (m: Measurement) => ({ p50: m.p50 - direct.fixed.p50, p99: m.p99 - direct.fixed.p99 });
  const referenceAdded = added(reference.fixed);
  console.log(
    `\n${duration}s per run, median of ${roundCount} interleaved rounds (a round with over ${MAX_STEAL_PCT} % steal taken again, up to ${MAX_RETAKES} times), peak with ${connections} connections, fixed rate ${rate} req/s\n`,
  );
  console.log(
    `| target | peak req/s | peak vs ${referenceLabel} | p50 @rate (ms) | p99 @rate (ms) | added p50 (ms) | added p99 (ms) | added p99 vs ${referenceLabel} | CPU µs/req @rate | steal % @rate |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [name] of targets) {
    const { peak, fixed } = results.get(name)!;
    const a = added(fixed);
    const isDirect = name === targets[0][0];
    const vsReference =
      referenceAdded.p99 > 0
        ? (a.p99 / referenceAdded.p99).toFixed(2)
        : `n/a (${referenceLabel} adds ${ms(referenceAdded.p99)})`;
    console.log(
      `| ${name} | ${Math.round(peak.rps)} | ${(peak.rps / reference.peak.rps).toFixed(2)} | ${ms(fixed.p50)} | ${ms(fixed.p99)} | ${
        isDirect ? '–' : ms(a.p50)
      } | ${isDirect ? '–' : ms(a.p99)} | ${isDirect ? '–' : vsReference} | ${Math.round(fixed.cpuUs)} | ${fixed.stealPct.toFixed(2)} |`,
    );
  }
  return added;
}

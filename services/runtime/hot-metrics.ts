/**
 * Counters and histograms for the per-request hot path, counted in plain numbers and read by
 * prom-client's registry at scrape time, in exactly the shape its own Counter and Histogram give.
 *
 * Why not prom-client's: `labels(...)` children of a prom-client 15 metric re-validate the labels,
 * build a labels object and hash it on every `inc()`/`observe()` — several microseconds and a
 * handful of short-lived objects per request, a few per cent of a proxied request's CPU. Here
 * `series(labels)` walks one map per label (label values on the hot path are the same string
 * objects request after request, so their hashes are cached and no key is built), and an
 * observation is an add and a bucket search.
 */
import type { Registry } from 'prom-client';

type Labels<L extends string> = Readonly<Record<L, string>>;

interface MetricValue {
  readonly labels: Record<string, string | number>;
  readonly sharedLabels?: Record<string, string>;
  readonly value: number;
  readonly metricName?: string;
}

interface HotMetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registers: readonly Registry[];
}

/** What prom-client's Registry needs of a metric: name, help, type, `get()`, `reset()`. */
abstract class HotMetric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  /** Every series with its labels, in creation order (what a scrape reads). */
  protected readonly children: { labels: Labels<L>; series: S }[] = [];
  /** Label value → … → series, one level per label name. */
  private lookup = new Map<string, unknown>();

  constructor(options: HotMetricOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    for (const registry of options.registers) {
      registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
    }
  }

  /** The series of these labels, made on first use. */
  series(labels: Labels<L>): S {
    const names = this.labelNames;
    let level = this.lookup;
    for (let i = 0; i < names.length - 1; i += 1) {
      const value = labels[names[i]];
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(value, (next = new Map<string, unknown>()));
      level = next;
    }
    const last = labels[names[names.length - 1]];
    let series = level.get(last) as S | undefined;
    if (series === undefined) {
      series = this.newSeries();
      level.set(last, series);
      this.children.push({ labels: { ...labels }, series });
    }
    return series;
  }

  reset(): void {
    this.children.length = 0;
    this.lookup = new Map();
  }

  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: MetricValue[];
  }> {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.values(),
    });
  }

  protected abstract newSeries(): S;
  protected abstract values(): MetricValue[];
}

export class CounterSeries {
  value = 0;
  inc(): void {
    this.value += 1;
  }
}

export class HotCounter<L extends string> extends HotMetric<L, CounterSeries> {
  readonly type = 'counter';

  protected newSeries(): CounterSeries {
    return new CounterSeries();
  }

  protected values(): MetricValue[] {
    return this.children.map(({ labels, series }) => ({ labels, value: series.value }));
  }
}

export class HistogramSeries {
  count = 0;
  sum = 0;
  /** Observations per bucket (not cumulative): index i counts values ≤ bounds[i] and > bounds[i-1]. */
  readonly counts: Float64Array;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.count += 1;
    this.sum += value;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i += 1) {
      if (value <= bounds[i]) {
        this.counts[i] += 1;
        return;
      }
    }
  }
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(options: HotMetricOptions<L> & { readonly buckets: readonly number[] }) {
    super(options);
    this.buckets = [...options.buckets].sort((a, b) => a - b);
  }

  protected newSeries(): HistogramSeries {
    return new HistogramSeries(this.buckets);
  }

  /** prom-client's histogram layout: cumulative `_bucket`s with `le`, then `+Inf`, `_sum`, `_count`. */
  protected values(): MetricValue[] {
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const { labels, series } of this.children) {
      const shared = labels as Record<string, string>;
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += series.counts[i];
        values.push({
          labels: { le: bound },
          sharedLabels: shared,
          value: cumulative,
          metricName: bucketName,
        });
      });
      values.push({
        labels: { le: '+Inf' },
        sharedLabels: shared,
        value: series.count,
        metricName: bucketName,
      });
      values.push({ labels: {}, sharedLabels: shared, value: series.sum, metricName: `${this.name}_sum` });
      values.push({
        labels: {},
        sharedLabels: shared,
        value: series.count,
        metricName: `${this.name}_count`,
      });
    }
    return values;
  }
}

/**
 * Commit discipline (contract section 7): an offset is committed only when every earlier record of
 * its partition is final (success, dead-lettered or dropped on purpose). Records of one partition
 * may finish out of order (`key` ordering); `PartitionProgress` tracks which are final and how far
 * the contiguous final prefix reaches. `OffsetCommitter` batches the resulting commits by count and
 * interval and flushes them on demand (rebalance, shutdown).
 */

/** The final prefix of one run of records of a partition (a fetched batch), in offset order. */
export class PartitionProgress {
  private readonly offsets: readonly string[];
  private readonly final: boolean[];
  /** Index of the first record that is not final yet. */
  private next = 0;

  constructor(offsets: readonly string[]) {
    this.offsets = offsets;
    this.final = offsets.map(() => false);
  }

  /**
   * Marks `offset` final. Returns the last offset of the contiguous final prefix when this call
   * extended it (commit that plus one), else undefined.
   */
  markFinal(offset: string): string | undefined {
    const index = this.offsets.indexOf(offset, this.next);
    if (index < 0) return undefined;
    this.final[index] = true;
    const before = this.next;
    while (this.next < this.offsets.length && this.final[this.next]) this.next += 1;
    return this.next > before ? this.offsets[this.next - 1] : undefined;
  }

  /** The last offset of the final prefix, or undefined when the first record is not final. */
  get lastFinal(): string | undefined {
    return this.next > 0 ? this.offsets[this.next - 1] : undefined;
  }

  get done(): boolean {
    return this.next === this.offsets.length;
  }
}

export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to consume: last final offset + 1 (Kafka's commit convention). */
  readonly offset: string;
}

export interface OffsetCommitterOptions {
  /** Sends one commit; rejects when Kafka refuses it (then the offsets stay pending). */
  readonly commit: (offsets: TopicPartitionOffset[]) => Promise<void>;
  readonly intervalMs: number;
  /** Flush once this many records became final since the last commit. */
  readonly maxRecords: number;
  readonly onError?: (err: unknown) => void;
}

const key = (topic: string, partition: number) => `${partition}\u0000${topic}`;

/** Pending commit offsets per partition; one commit request at a time. */
export class OffsetCommitter {
  private readonly pending = new Map<string, TopicPartitionOffset>();
  /** The highest offset committed per partition (a failed older commit must not move back under it). */
  private readonly committed = new Map<string, bigint>();
  private recordsSinceCommit = 0;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: OffsetCommitterOptions) {}

  /** Starts the interval timer (unref'd). */
  start(): void {
    this.stopped = false;
    this.timer ??= setInterval(() => void this.flush().catch(() => undefined), this.options.intervalMs);
    this.timer.unref();
  }

  /** Records that the partition's final prefix now ends at `lastFinalOffset`. */
  advance(topic: string, partition: number, lastFinalOffset: string, records = 1): void {
    const offset = (BigInt(lastFinalOffset) + 1n).toString();
    const current = this.pending.get(key(topic, partition));
    if (!current || BigInt(current.offset) < BigInt(offset)) {
      this.pending.set(key(topic, partition), { topic, partition, offset });
    }
    this.recordsSinceCommit += records;
    if (this.recordsSinceCommit >= this.options.maxRecords) void this.flush().catch(() => undefined);
  }

  /** Offsets advanced but not committed yet. */
  get pendingOffsets(): TopicPartitionOffset[] {
    return [...this.pending.values()];
  }

  /**
   * Commits what is pending (waiting for a commit already under way first, unless `urgent`: then
   * the pending offsets go out at once, beside it — a rebalance must not wait a round trip). Offsets
   * a failed commit carried stay pending unless newer ones replaced them or were committed since.
   * Rejects with the commit's error.
   */
  async flush(urgent = false): Promise<void> {
    if (!urgent) while (this.flushing) await this.flushing.catch(() => undefined);
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.recordsSinceCommit = 0;
    const run = (async () => {
      try {
        await this.options.commit(batch);
        for (const entry of batch) {
          const k = key(entry.topic, entry.partition);
          const done = this.committed.get(k);
          if (done === undefined || done < BigInt(entry.offset)) this.committed.set(k, BigInt(entry.offset));
        }
      } catch (err) {
        for (const entry of batch) {
          const k = key(entry.topic, entry.partition);
          const done = this.committed.get(k);
          if (!this.pending.has(k) && (done === undefined || done < BigInt(entry.offset))) {
            this.pending.set(k, entry);
          }
        }
        this.options.onError?.(err);
        throw err;
      }
    })();
    this.flushing = run;
    try {
      await run;
    } finally {
      if (this.flushing === run) this.flushing = undefined;
    }
  }

  /** Drops pending offsets of partitions this member no longer owns (they cannot be committed). */
  retainOnly(owned: (topic: string, partition: number) => boolean): void {
    for (const [k, entry] of this.pending) if (!owned(entry.topic, entry.partition)) this.pending.delete(k);
    for (const k of this.committed.keys()) {
      const [partition, topic] = k.split('\u0000');
      if (!owned(topic, Number(partition))) this.committed.delete(k);
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

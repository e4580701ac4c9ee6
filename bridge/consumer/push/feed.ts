/**
 * Bounded per-partition prefetch (contract section 7, commit discipline unchanged).
 *
 * kafkajs fetches a broker's next batches only after the `eachBatch` handlers of the current ones
 * return. A `PartitionFeed` lets the handler return before the records are final: it takes the
 * fetched records into a bounded queue and delivers them in lanes (`partition`: one delivery in
 * flight per partition; `key`: one per key, in order per key), each delivery holding a slot of the
 * subscription's semaphore. Only final records move the commit position (`StreamProgress`: the
 * contiguous final prefix). When a delivery answers a halt (app down, blocked, stopped) or the
 * subscription halts the feed (rebalance, shutdown), no further delivery starts, the queued records
 * are dropped, and once the deliveries in flight are done the feed reports the first record that is
 * not final: the subscription seeks the partition back there, so nothing queued is lost.
 *
 * `DeliveryFormat` is the seam a delivery format plugs into: "deliver these records, report which
 * are final".
 */
import type { ConsumedRecord } from './cloudevents.js';
import type { Semaphore } from './ordering.js';

/** Why a partition has to stop before all its records are final. */
export type Halt = 'app-down' | 'blocked' | 'stopped';
export type DeliveryResult = 'final' | Halt;

/**
 * Delivers `records` (one partition, offset order), reports the records whose outcome is final
 * (success, dead-lettered, dropped) through `markFinal` in any order, and answers `final` once all of
 * them are, or why the partition has to stop. `signal` aborts when the feed halts or the sidecar
 * drains: backoff waits end and the delivery answers `stopped`.
 */
export type DeliverRecords = (
  records: readonly ConsumedRecord[],
  signal: AbortSignal,
  markFinal: (offsets: readonly string[]) => void,
) => Promise<DeliveryResult>;

/** How a subscription delivers: single CloudEvents, batches, or another format. */
export interface DeliveryFormat {
  /** The most records one `deliver` call takes (1: one request per record). */
  readonly maxRecords: number;
  /** Lane of a record: a lane's deliveries run one at a time, in order; lanes run in parallel. */
  readonly laneOf: (record: ConsumedRecord) => string;
  readonly deliver: DeliverRecords;
  /**
   * Work for a lane's next delivery (e.g. its request body), done while the current one is in
   * flight: `records` are the ones it will most likely take. Nothing may depend on it being called.
   */
  readonly prepare?: (records: readonly ConsumedRecord[]) => void;
}

/**
 * The final prefix of a stream of offsets of one partition, appended in offset order and finished
 * in any order. Offsets are compared by position, not arithmetic (compacted topics have gaps).
 */
export class StreamProgress {
  private offsets: string[] = [];
  private head = 0;
  private readonly pending = new Set<string>();
  private last: string | undefined;

  append(offset: string): void {
    this.offsets.push(offset);
    this.pending.add(offset);
  }

  /** Marks `offset` final; returns the new end of the final prefix when this call extended it. */
  markFinal(offset: string): string | undefined {
    if (!this.pending.delete(offset)) return undefined;
    const before = this.head;
    while (this.head < this.offsets.length && !this.pending.has(this.offsets[this.head])) this.head += 1;
    if (this.head === before) return undefined;
    this.last = this.offsets[this.head - 1];
    if (this.head > 1_024 && this.head * 2 > this.offsets.length) {
      this.offsets = this.offsets.slice(this.head);
      this.head = 0;
    }
    return this.last;
  }

  /** The last offset of the final prefix (over the whole stream), undefined before the first. */
  get lastFinal(): string | undefined {
    return this.last;
  }

  /** The first offset that is not final, undefined when every appended offset is. */
  get firstPending(): string | undefined {
    return this.head < this.offsets.length ? this.offsets[this.head] : undefined;
  }

  /** Appended offsets that are not final yet. */
  get size(): number {
    return this.pending.size;
  }

  /** Forgets the offsets that are not final (they will be fetched again). */
  dropPending(): void {
    this.offsets = [];
    this.head = 0;
    this.pending.clear();
  }
}

/** A FIFO with O(1) shift. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  /** The first `max` items, left in place. */
  peek(max: number): T[] {
    return this.items.slice(this.head, this.head + max);
  }

  take(max: number): T[] {
    const taken = this.items.slice(this.head, this.head + max);
    this.head += taken.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1_024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return taken;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Keeps only the items `keep` accepts, in order. */
  retain(keep: (item: T) => boolean): void {
    this.items = this.items.slice(this.head).filter(keep);
    this.head = 0;
  }
}

export interface FeedCapacity {
  /** The most records taken and not final yet (queued plus in flight). */
  readonly records: number;
  /** The most bytes (keys and values) of records taken and not delivered yet. */
  readonly bytes: number;
}

export interface PartitionFeedOptions {
  readonly format: DeliveryFormat;
  readonly semaphore: Semaphore;
  readonly capacity: FeedCapacity;
  /** The final prefix now ends at `lastFinal`; `count` records became final. */
  readonly onFinal: (lastFinal: string, count: number) => void;
  /** The feed halts: fetching of the partition should stop now. Called again if the reason changes. */
  readonly onHalt?: (reason: Halt) => void;
  /**
   * The halt is over: no delivery in flight, the queue dropped, the feed open again.
   * `resumeFrom` is the first record that was not final (fetch again from there), undefined when
   * every record taken was final.
   */
  readonly onSettled?: (reason: Halt, resumeFrom: string | undefined) => void;
  /** A delivery threw (a bug, not an answer): the feed halts as `blocked`. */
  readonly onError?: (err: unknown) => void;
}

const recordBytes = (record: ConsumedRecord) =>
  (record.message.value?.length ?? 0) + (record.message.key?.length ?? 0);

export class PartitionFeed {
  private readonly lanes = new Map<string, Fifo<ConsumedRecord>>();
  private readonly runners = new Set<string>();
  private readonly progress = new StreamProgress();
  private state: 'open' | 'halting' = 'open';
  private haltReason: Halt = 'stopped';
  private abort = new AbortController();
  private inFlight = 0;
  private bytes = 0;
  /** Records below this offset are final already (the feed was seeked back to it): skip them. */
  private floor: bigint | undefined;
  /** The last record taken, or (after a halt) the offset before which everything is final. */
  private lastTaken: { offset: string; taken: boolean } | undefined;
  /** The highest offset handed to a delivery so far. */
  private highestStarted: bigint | undefined;
  /** Halting, but still delivering the queued records below `highestStarted` (see `halt`). */
  private filling = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly options: PartitionFeedOptions) {}

  get halted(): boolean {
    return this.state !== 'open';
  }

  /** Open and at capacity: the caller waits for `space()` before pushing more. */
  get full(): boolean {
    const { records, bytes } = this.options.capacity;
    return (
      this.state === 'open' &&
      this.progress.size > 0 &&
      (this.progress.size >= records || this.bytes >= bytes)
    );
  }

  /** Records taken and not final. */
  get pending(): number {
    return this.progress.size;
  }

  get lastFinal(): string | undefined {
    return this.progress.lastFinal;
  }

  /**
   * Where fetching of the partition continues: after the last record taken (the queued ones are
   * still delivered), or, after a halt settled, the first record that was not final. Undefined while
   * halting (`onSettled` tells it) or before the first record.
   */
  get position(): string | undefined {
    const last = this.lastTaken;
    if (this.state !== 'open' || !last) return undefined;
    return last.taken ? (BigInt(last.offset) + 1n).toString() : last.offset;
  }

  /**
   * Takes a fetched record (offset order). Answers false when the feed is halting (the record is
   * not taken; the partition will be fetched again from the first record that is not final).
   * Records below the offset the feed was seeked back to are final already: skipped, answered true.
   */
  push(record: ConsumedRecord): boolean {
    if (this.state !== 'open') return false;
    const { offset } = record.message;
    if (this.floor !== undefined) {
      if (BigInt(offset) < this.floor) return true;
      this.floor = undefined;
    }
    this.lastTaken = { offset, taken: true };
    this.progress.append(offset);
    this.bytes += recordBytes(record);
    const lane = this.options.format.laneOf(record);
    let queue = this.lanes.get(lane);
    if (!queue) this.lanes.set(lane, (queue = new Fifo()));
    queue.push(record);
    if (!this.runners.has(lane)) {
      this.runners.add(lane);
      // Started after the caller's synchronous pushes, so a batch delivery takes a full batch.
      queueMicrotask(() => void this.runLane(lane));
    }
    return true;
  }

  /**
   * Resolves when the feed has room again (down to three quarters of its bound, so a waiting
   * producer is not woken for every single record), or halts.
   */
  async space(): Promise<void> {
    while (this.state === 'open' && !this.roomy) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private get roomy(): boolean {
    const { records, bytes } = this.options.capacity;
    return this.progress.size <= (records * 3) / 4 && this.bytes <= (bytes * 3) / 4;
  }

  /** Resolves when every record taken is final, or the feed halts. */
  async idle(): Promise<void> {
    while (this.state === 'open' && this.progress.size > 0) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Resolves when the feed is open (not halting): at once, or when a halt has settled. */
  async settled(): Promise<void> {
    while (this.state !== 'open') await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /**
   * Stops starting deliveries, drops the queued records, aborts backoff waits; deliveries in flight
   * finish. `app-down` and `blocked` win over `stopped`.
   *
   * With `fillGaps` (a member leaving for good: SIGTERM), the queued records below the highest
   * offset already handed to a delivery are delivered first. With lanes per key, records of other
   * keys may be queued below one already delivered: dropped, they would hold the commit position
   * back, and the partition's next owner would deliver again everything above them, acknowledged
   * or not. Filling those gaps lets the final commit cover every record delivered. A delivery that
   * is not final meanwhile ends the filling (the rest is dropped, as in a plain halt).
   */
  halt(reason: Halt, fillGaps = false): void {
    if (this.state !== 'open') {
      if (reason !== 'stopped' || this.filling) this.stopFilling();
      if (this.haltReason === 'stopped' && reason !== 'stopped') {
        this.haltReason = reason;
        this.options.onHalt?.(reason);
      }
      return;
    }
    this.state = 'halting';
    this.haltReason = reason;
    this.abort.abort();
    const below = this.highestStarted;
    if (fillGaps && below !== undefined) {
      // A lane emptied here still has its runner, which removes it when it sees the queue empty.
      for (const queue of this.lanes.values())
        queue.retain((record) => BigInt(record.message.offset) < below);
      this.filling = this.hasQueued;
    }
    if (!this.filling) this.lanes.clear();
    this.options.onHalt?.(reason);
    this.wake();
    this.settleIfDone();
  }

  /** Records queued in any lane. */
  private get hasQueued(): boolean {
    for (const queue of this.lanes.values()) if (queue.length > 0) return true;
    return false;
  }

  private stopFilling(): void {
    this.filling = false;
    this.lanes.clear();
  }

  /** Open, or halting while the gaps below delivered records are filled. */
  private get delivering(): boolean {
    return this.state === 'open' || this.filling;
  }

  private async runLane(lane: string): Promise<void> {
    const { semaphore, format } = this.options;
    try {
      for (;;) {
        const queue = this.lanes.get(lane);
        if (!this.delivering || !queue || queue.length === 0) return;
        const release = semaphore.tryAcquire() ?? (await semaphore.acquire());
        try {
          const current = this.lanes.get(lane);
          if (!this.delivering || !current || current.length === 0) return;
          const records = current.take(format.maxRecords);
          for (const record of records) {
            const offset = BigInt(record.message.offset);
            if (this.highestStarted === undefined || offset > this.highestStarted)
              this.highestStarted = offset;
          }
          const bytes = records.reduce((sum, record) => sum + recordBytes(record), 0);
          this.inFlight += 1;
          let result: DeliveryResult;
          try {
            const delivery = format.deliver(records, this.abort.signal, this.markFinal);
            if (format.prepare) this.prepareNext(lane, format.prepare);
            result = await delivery;
          } catch (err) {
            this.options.onError?.(err);
            result = 'blocked';
          } finally {
            this.inFlight -= 1;
            this.bytes = Math.max(0, this.bytes - bytes);
          }
          if (result !== 'final') this.halt(result);
          else this.wake();
        } finally {
          release();
        }
      }
    } finally {
      this.runners.delete(lane);
      if (this.lanes.get(lane)?.length === 0) this.lanes.delete(lane);
      this.settleIfDone();
    }
  }

  /**
   * Prepares the lane's next delivery once the current one's request is on its way: an immediate
   * runs after the HTTP client's own (which writes the request), so the app and this work overlap.
   */
  private prepareNext(lane: string, prepare: (records: readonly ConsumedRecord[]) => void): void {
    setImmediate(() => {
      const queue = this.lanes.get(lane);
      if (this.state !== 'open' || !queue || queue.length === 0) return;
      try {
        prepare(queue.peek(this.options.format.maxRecords));
      } catch {
        // Only a head start: the delivery does the work again, and reports what fails then.
      }
    });
  }

  private readonly markFinal = (offsets: readonly string[]): void => {
    let last: string | undefined;
    for (const offset of offsets) last = this.progress.markFinal(offset) ?? last;
    if (last !== undefined) this.options.onFinal(last, offsets.length);
  };

  private settleIfDone(): void {
    if (this.state !== 'halting' || this.inFlight > 0) return;
    if (this.filling && this.hasQueued) return;
    this.filling = false;
    const resumeFrom = this.progress.firstPending;
    const reason = this.haltReason;
    this.progress.dropPending();
    this.bytes = 0;
    if (resumeFrom !== undefined) {
      this.floor = BigInt(resumeFrom);
      this.lastTaken = { offset: resumeFrom, taken: false };
    }
    this.abort = new AbortController();
    this.state = 'open';
    this.haltReason = 'stopped';
    this.options.onSettled?.(reason, resumeFrom);
    this.wake();
  }

  private wake(): void {
    // While still full no waiter can go on: space() waits for room, idle() for no pending record.
    if (this.waiters.length === 0 || this.full) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Ordering of deliveries inside one partition (contract section 7): `partition` runs one record at
 * a time; `key` runs one lane per key (records without a key share a lane), lanes in parallel, in
 * order within a lane. A `Semaphore` caps the requests in flight over all partitions.
 */

/** A counting semaphore; `acquire` resolves with the release function, FIFO. */
export class Semaphore {
  private available: number;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly limit: number) {
    this.available = limit;
  }

  async acquire(): Promise<() => void> {
    return this.tryAcquire() ?? this.wait();
  }

  /** A slot at once, or undefined when all are taken (the hot path: no promise, no tick). */
  tryAcquire(): (() => void) | undefined {
    if (this.available === 0) return undefined;
    this.available -= 1;
    return this.releaser();
  }

  private async wait(): Promise<() => void> {
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.available += 1;
    };
  }

  get inUse(): number {
    return this.limit - this.available;
  }
}

export type Ordering = 'partition' | 'key';

/**
 * Runs `run` for every item, one lane at a time per lane id, lanes concurrently (each run holding a
 * semaphore slot). When `run` answers `false` (the partition must stop: app down, blocked,
 * draining), no lane starts another item; runs already under way finish. Resolves when all lanes
 * have stopped, with whether every item ran and answered `true`.
 */
export async function runInLanes<T>(
  items: readonly T[],
  laneOf: (item: T) => string,
  run: (item: T) => Promise<boolean>,
  semaphore: Semaphore,
): Promise<boolean> {
  const lanes = new Map<string, T[]>();
  for (const item of items) {
    const id = laneOf(item);
    const lane = lanes.get(id);
    if (lane) lane.push(item);
    else lanes.set(id, [item]);
  }
  let halted = false;
  await Promise.all(
    [...lanes.values()].map(async (lane) => {
      for (const item of lane) {
        if (halted) return;
        const release = semaphore.tryAcquire() ?? (await semaphore.acquire());
        try {
          if (halted) return;
          if (!(await run(item))) halted = true;
        } catch (err) {
          halted = true;
          throw err;
        } finally {
          release();
        }
      }
    }),
  );
  return !halted;
}

/** The lane of a record: all of a partition's records in one lane, or one lane per key. */
export function laneOf(ordering: Ordering, key: Buffer | null): string {
  if (ordering === 'partition') return '';
  return key === null ? '\u0000null' : `k${key.toString('base64')}`;
}

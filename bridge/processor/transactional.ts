/**
 * exactly_once: one transactional producer per input topic-partition, with the stable id
 * `<prefix>-<processor>-<topic>-<partition>`. Whoever owns the partition next (this process after a
 * restart, or another member after a rebalance) initialises the same id, which fences the previous
 * owner's producer and aborts its open transaction at once (waiting for one that is committing to
 * finish), so read_committed readers are never blocked by a dead member's transaction. A
 * per-member id would leave that transaction open until its timeout.
 */
import type { Producer } from 'kafkajs';

export function transactionalId(prefix: string, processor: string, topic: string, partition: number): string {
  return `${prefix}-${processor}-${topic}-${partition}`;
}

interface Entry {
  readonly producer: Producer;
  readonly ready: Promise<Producer>;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** The transactional producers of the partitions this member owns, created on assignment. */
export class PartitionProducers {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly create: (transactionalId: string) => Producer,
    private readonly idOf: (topic: string, partition: number) => string,
  ) {}

  /**
   * The connected producer of a partition, its transactional id initialised (the fencing step).
   * Made on first call; a failed start is forgotten so the next call tries again.
   */
  acquire(topic: string, partition: number): Promise<Producer> {
    const key = tpKey(topic, partition);
    const existing = this.entries.get(key);
    if (existing) return existing.ready;
    const producer = this.create(this.idOf(topic, partition));
    const ready = (async () => {
      await producer.connect();
      // kafkajs sends InitProducerId on the first transaction; an empty one ends locally.
      const fence = await producer.transaction();
      await fence.abort();
      return producer;
    })();
    const entry = { producer, ready };
    this.entries.set(key, entry);
    ready.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      void producer.disconnect().catch(() => undefined);
    });
    return ready;
  }

  /** Disconnects the producer of a partition (after a failed transaction, or when it is revoked). */
  async release(topic: string, partition: number): Promise<void> {
    const key = tpKey(topic, partition);
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    await entry.ready.catch(() => undefined);
    await entry.producer.disconnect().catch(() => undefined);
  }

  /** Releases every producer whose partition `keep` rejects. */
  async retainOnly(keep: (topic: string, partition: number) => boolean): Promise<void> {
    const gone = [...this.entries.keys()]
      .map((key) => key.split('\u0000'))
      .filter(([topic, partition]) => !keep(topic, Number(partition)));
    await Promise.all(gone.map(([topic, partition]) => this.release(topic, Number(partition))));
  }

  async releaseAll(): Promise<void> {
    await this.retainOnly(() => false);
  }

  get size(): number {
    return this.entries.size;
  }
}

import type { OffsetEntry } from './produce-service.js';

/** What an earlier request with the same key left behind. */
interface Entry {
  readonly fingerprint: string;
  readonly expiresAt: number;
  /** Results per record once the request ended; undefined while it is in flight. */
  offsets: OffsetEntry[] | undefined;
  /** Resolves when the request that owns the entry ends. */
  done: Promise<void>;
}

export type IdempotencyClaim =
  /** No earlier request: produce everything, then `complete`. */
  | { kind: 'first'; complete: (offsets: OffsetEntry[]) => void; abandon: () => void }
  /** An earlier request ended: `offsets` are its results; records without an offset may be produced again. */
  | {
      kind: 'repeat';
      offsets: OffsetEntry[];
      complete: (offsets: OffsetEntry[]) => void;
      abandon: () => void;
    }
  /** The key was used with another body. */
  | { kind: 'mismatch' };

/**
 * Remembers the per-record results of requests by `Idempotency-Key`, so a client that repeats a
 * request (after a timeout, a 503, a crash of its own) never writes a record twice: a repeat
 * answers the acknowledged records from memory and produces only the rest. Memory is bounded by
 * `maxEntries` (oldest first) and `windowMs`; only offsets are kept, never bodies.
 */
export class IdempotencyStore {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Claims `key` for one request; a repeat while the first is in flight waits for it. */
  async claim(key: string, fingerprint: string): Promise<IdempotencyClaim> {
    for (;;) {
      const existing = this.live(key);
      if (!existing) return this.open(key, fingerprint, undefined);
      if (existing.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (existing.offsets === undefined) {
        await existing.done;
        continue;
      }
      return this.open(key, fingerprint, existing.offsets);
    }
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private open(key: string, fingerprint: string, previous: OffsetEntry[] | undefined): IdempotencyClaim {
    let finish!: () => void;
    const entry: Entry = {
      fingerprint,
      expiresAt: this.now() + this.windowMs,
      offsets: undefined,
      done: new Promise<void>((resolve) => (finish = resolve)),
    };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.evict();
    const complete = (offsets: OffsetEntry[]) => {
      entry.offsets = offsets;
      finish();
    };
    const abandon = () => {
      // The request ended without results (a crash in between): let the next repeat start over,
      // from what the earlier attempt had, if any.
      if (previous) entry.offsets = previous;
      else if (this.entries.get(key) === entry) this.entries.delete(key);
      finish();
    };
    return previous
      ? { kind: 'repeat', offsets: previous, complete, abandon }
      : { kind: 'first', complete, abandon };
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

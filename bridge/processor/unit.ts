/**
 * One unit of a partition's records (at most `commitRecords`): what the records became, written as
 * soon as they are part of the unit's final prefix, then committed together.
 *
 * Outputs are sent while the unit is still running (one request at a time; what becomes final
 * meanwhile goes with the next), always in input offset order and never past the contiguous final
 * prefix: a record that finished early (`key` ordering) waits for the ones before it, so whatever
 * was sent is covered by the offset the unit commits. With `exactly_once` the sink is the unit's
 * transaction: the sends, the offset and the commit are one atomic step, and a failure aborts all
 * of it.
 */
import type { Message, TopicMessages } from 'kafkajs';
import { PartitionProgress } from '../consumer/push/commit-tracker.js';
import type { OutputRecord } from './answer.js';

/** What became of one input record (or, in batch mode, of the last record of a request). */
export type Final =
  | { readonly kind: 'outputs'; readonly outputs: readonly OutputRecord[]; readonly count: number }
  /** Batch mode: a record before the last one of a request, whose outcome the last one carries. */
  | { readonly kind: 'covered' }
  | { readonly kind: 'dead-letter'; readonly messages: readonly Message[]; readonly count: number }
  | { readonly kind: 'dropped'; readonly count: number };

export interface UnitSink {
  /** Writes records (inside the unit's transaction with `exactly_once`). */
  send(topicMessages: TopicMessages[]): Promise<void>;
  /** Commits `nextOffset` (the offset after the final prefix) with what was sent. */
  commit(nextOffset: string): Promise<void>;
  /** Ends the unit without committing (aborts the transaction); best effort. */
  abort(): Promise<void>;
}

export interface UnitResult {
  /** The last offset of the committed prefix; undefined when no record was final. */
  readonly lastFinal: string | undefined;
  readonly counts: { success: number; dead_letter: number; dropped: number };
  /** Records written per topic (outputs and dead letters). */
  readonly written: ReadonlyMap<string, number>;
}

export class UnitWriter {
  private readonly progress: PartitionProgress;
  private readonly finals = new Map<string, Final>();
  /** Index of the first record whose outcome is not written yet. */
  private cursor = 0;
  private sending: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;
  private readonly counts = { success: 0, dead_letter: 0, dropped: 0 };
  private readonly written = new Map<string, number>();

  constructor(
    private readonly offsets: readonly string[],
    private readonly sink: UnitSink,
    private readonly deadLetterTopic: string | undefined,
    /** Called once when a send fails: the unit should stop taking records. */
    private readonly onFailure: (error: unknown) => void = () => undefined,
    /** Input records written together while the unit runs (the rest when it finishes). */
    private readonly writeBatch = 1,
  ) {
    this.progress = new PartitionProgress(offsets);
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Records the outcome of `offset` and writes whatever became part of the final prefix. */
  final(offset: string, result: Final): void {
    this.finals.set(offset, result);
    this.progress.markFinal(offset);
    this.pump();
  }

  /**
   * Waits for the writes, then commits the final prefix. Resolves with what was committed; rejects
   * (after aborting) when a write or the commit failed: nothing of the unit counts then.
   */
  async finish(): Promise<UnitResult> {
    try {
      do {
        await this.settle();
        if (this.failure) throw this.failure.error;
      } while (this.pump(true));
      const lastFinal = this.progress.lastFinal;
      if (lastFinal === undefined) {
        await this.sink.abort();
      } else {
        await this.sink.commit((BigInt(lastFinal) + 1n).toString());
      }
      return { lastFinal, counts: this.counts, written: this.written };
    } catch (err) {
      await this.sink.abort().catch(() => undefined);
      throw err;
    }
  }

  /** Waits until no write is under way (each finished write starts the next, if any). */
  private async settle(): Promise<void> {
    for (let pending = this.sending; pending; pending = this.sending) await pending;
  }

  /**
   * Starts one write of the records that are final and unwritten (at least `writeBatch` of them
   * unless `force`), unless one is under way. True when it started one.
   */
  private pump(force = false): boolean {
    if (this.sending || this.failure) return false;
    const byTopic = new Map<string, Message[]>();
    const lastFinal = this.progress.lastFinal;
    const end = lastFinal === undefined ? -1n : BigInt(lastFinal);
    let stop = this.cursor;
    while (stop < this.offsets.length && BigInt(this.offsets[stop]) <= end) stop += 1;
    if (stop === this.cursor || (!force && stop - this.cursor < this.writeBatch)) return false;
    while (this.cursor < stop) {
      const final = this.finals.get(this.offsets[this.cursor]);
      this.cursor += 1;
      if (!final || final.kind === 'covered') continue;
      if (final.kind === 'dropped') {
        this.counts.dropped += final.count;
      } else if (final.kind === 'outputs') {
        this.counts.success += final.count;
        for (const output of final.outputs) add(byTopic, output.topic, output.message);
      } else {
        this.counts.dead_letter += final.count;
        for (const message of final.messages) add(byTopic, this.deadLetterTopic!, message);
      }
    }
    if (byTopic.size === 0) return false;
    const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    this.sending = this.sink.send(topicMessages).then(
      () => {
        for (const { topic, messages } of topicMessages) {
          this.written.set(topic, (this.written.get(topic) ?? 0) + messages.length);
        }
        this.sending = undefined;
        this.pump();
      },
      (error: unknown) => {
        this.failure = { error };
        this.sending = undefined;
        this.onFailure(error);
      },
    );
    return true;
  }
}

function add(byTopic: Map<string, Message[]>, topic: string, message: Message): void {
  const list = byTopic.get(topic);
  if (list) list.push(message);
  else byTopic.set(topic, [message]);
}

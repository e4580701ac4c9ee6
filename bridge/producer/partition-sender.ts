import type { CompressionTypes, Message, Producer } from 'kafkajs';
import { MeshError } from '../../services/runtime/errors.js';

/** What became of one record: its offset, or why it was not acknowledged. */
export type RecordOutcome = { partition: number; offset: number } | { partition: number; error: MeshError };

interface Pending {
  readonly message: Message;
  readonly bytes: number;
  state: 'queued' | 'sending' | 'done';
  /** Resolves the answer the client gets, at the latest at the deadline. */
  answer(outcome: RecordOutcome): void;
  /** Resolves the record's real fate: only when Kafka has answered, or the record was withdrawn. */
  settle(outcome: RecordOutcome): void;
}

/** What `send` promises: the deadline-bounded answers, and the real outcomes behind them. */
export interface SendOutcomes {
  readonly answers: Promise<RecordOutcome[]>;
  /**
   * Differs from `answers` only for records still in flight at the deadline: they resolve once
   * Kafka has acknowledged or refused them. Idempotency keys wait for this, so a repeat never
   * sends again a record that was written after its first answer said "not acknowledged in time".
   */
  readonly final: Promise<RecordOutcome[]>;
}

export interface PartitionSenderOptions {
  readonly producer: Producer;
  readonly topic: string;
  readonly partition: number;
  readonly compression: CompressionTypes;
  readonly maxBatchRecords: number;
  readonly maxBatchBytes: number;
  /** Maps a failed send to the error its records report (unknown partition, Kafka unavailable). */
  readonly classifyError: (err: unknown) => MeshError;
}

/**
 * Sends the records of one topic-partition, one produce request at a time, in arrival order.
 *
 * One request in flight per partition is what keeps the idempotent producer's sequence numbers
 * (and so ordering and de-duplication) correct with kafkajs; records that arrive while a batch is
 * in flight wait and go out together in the next one, so batches grow with load on their own.
 */
export class PartitionSender {
  private readonly queue: Pending[] = [];
  private sending = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: PartitionSenderOptions) {}

  /** Resolves once nothing is queued or in flight. */
  whenIdle(): Promise<void> {
    if (!this.sending && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Queues records (in order) and resolves with one outcome each. When `deadline` passes first,
   * records still queued are withdrawn (they were never sent) and records in flight are reported
   * as not acknowledged; Kafka may still write those, which the message says.
   */
  send(records: readonly { message: Message; bytes: number }[], deadline: AbortSignal): SendOutcomes {
    const { partition } = this.options;
    const mine: Pending[] = [];
    const answers: Promise<RecordOutcome>[] = [];
    const finals: Promise<RecordOutcome>[] = [];
    for (const { message, bytes } of records) {
      let answer!: (outcome: RecordOutcome) => void;
      let settle!: (outcome: RecordOutcome) => void;
      answers.push(new Promise((resolve) => (answer = resolve)));
      finals.push(new Promise((resolve) => (settle = resolve)));
      const pending: Pending = {
        message,
        bytes,
        state: 'queued',
        answer,
        settle: (outcome) => {
          pending.state = 'done';
          answer(outcome);
          settle(outcome);
        },
      };
      mine.push(pending);
      this.queue.push(pending);
    }
    const onDeadline = () => {
      for (const pending of mine) {
        if (pending.state === 'queued') {
          this.queue.splice(this.queue.indexOf(pending), 1);
          pending.settle({ partition, error: notSent() });
        } else if (pending.state === 'sending') {
          pending.answer({ partition, error: notAcknowledgedInTime() });
        }
      }
    };
    if (deadline.aborted) onDeadline();
    else deadline.addEventListener('abort', onDeadline, { once: true });
    this.pump();
    const final = Promise.all(finals).finally(() => deadline.removeEventListener('abort', onDeadline));
    return { answers: Promise.all(answers), final };
  }

  private pump(): void {
    if (this.sending) return;
    if (this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    const batch: Pending[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < this.options.maxBatchRecords) {
      const next = this.queue[0]!;
      if (batch.length > 0 && bytes + next.bytes > this.options.maxBatchBytes) break;
      this.queue.shift();
      next.state = 'sending';
      batch.push(next);
      bytes += next.bytes;
    }
    this.sending = true;
    void this.sendBatch(batch).finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  private async sendBatch(batch: Pending[]): Promise<void> {
    const { producer, topic, partition, compression } = this.options;
    try {
      const [metadata] = await producer.send({
        topic,
        acks: -1,
        compression,
        messages: batch.map((pending) => ({ ...pending.message, partition })),
      });
      if (!metadata || metadata.errorCode !== 0) throw new Error(`produce failed with error code ${metadata?.errorCode}`);
      const base = Number(metadata.baseOffset);
      batch.forEach((pending, index) => pending.settle({ partition, offset: base + index }));
    } catch (err) {
      const error = this.options.classifyError(err);
      for (const pending of batch) pending.settle({ partition, error });
    }
  }
}

function notSent(): MeshError {
  return new MeshError('MESH_KAFKA_UNAVAILABLE', 'not sent: Kafka did not accept records in time', {
    headers: { 'retry-after': '1' },
  });
}

function notAcknowledgedInTime(): MeshError {
  return new MeshError('MESH_KAFKA_UNAVAILABLE', 'not acknowledged in time: the record may or may not have been written', {
    headers: { 'retry-after': '1' },
  });
}

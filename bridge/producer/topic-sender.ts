import type { CompressionTypes, Message, Producer } from 'kafkajs';
import { MeshError } from '../../services/runtime/errors.js';
import { isRetriableKafkaError } from '../kafka/errors.js';

/** What became of one record: its offset, or why it was not acknowledged. */
export type RecordOutcome = { partition: number; offset: number } | { partition: number; error: MeshError };

interface Pending {
  readonly message: Message;
  readonly partition: number;
  readonly bytes: number;
  /** The delivery deadline of the request the record came with. */
  readonly deadline: AbortSignal;
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

export interface TopicSenderOptions {
  readonly producer: Producer;
  readonly topic: string;
  readonly compression: CompressionTypes;
  /** Most records, and bytes, of one partition in one produce cycle. */
  readonly maxBatchRecords: number;
  readonly maxBatchBytes: number;
  /** The broker leading a partition now; records of one leader go out in one produce request. */
  readonly leaderOf: (partition: number) => number;
  /** Maps a failed send to the error its records report (unknown partition, Kafka unavailable). */
  readonly classifyError: (err: unknown) => MeshError;
  /** Called after a retriable failure: the partition leaders may have moved (refresh `leaderOf`). */
  readonly leadersChanged?: () => void;
  /** After a retriable failure, how long records go out one partition per request. Default 30 s. */
  readonly settleMs?: number;
  /** Whether a failed send may be sent again (default: broker gone, leader moved, timeout). */
  readonly isRetriable?: (err: unknown) => boolean;
  /** Waits between two sends of the same records: 100 ms doubling, capped (tests shorten it). */
  readonly retryBackoffMs?: { readonly initial: number; readonly max: number };
}

/**
 * Sends the records of one topic in produce cycles, one cycle at a time, in arrival order.
 *
 * A cycle takes what is queued (up to the per-partition limits) and sends one request per leader
 * broker, so a failure is known per request and never blurs which records were written. The next
 * cycle starts when the last one has ended: that keeps every partition in order through retries
 * of the idempotent producer (kafkajs allows one idempotent request per broker in flight anyway),
 * and records that arrive meanwhile go out together, so batches grow with load on their own.
 *
 * Leader changes: a send that fails with a retriable error (broker gone, leader moved, not enough
 * replicas, timeout) is sent again, with the same records, until the delivery deadline of its
 * requests has passed; the idempotent producer reuses the sequence numbers of a failed send, so the
 * broker drops a copy it had already written. Retries, and every send for `settleMs` after one, go
 * one partition per request: while leaders move, kafkajs may split a multi-partition send over two
 * brokers, and when one half is written and the other fails it throws without saying which, while
 * a single-partition send is all or nothing.
 */
export class TopicSender {
  private readonly queue: Pending[] = [];
  private sending = false;
  /** Until when sends go one partition per request (set by a retriable failure). */
  private settlingUntil = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: TopicSenderOptions) {}

  /** Resolves once nothing is queued or in flight. */
  whenIdle(): Promise<void> {
    if (!this.sending && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Queues records (in order, each with its partition) and promises one outcome each. When
   * `deadline` passes first, records still queued are withdrawn (they were never sent) and records
   * in flight are answered as not acknowledged; Kafka may still write those, which the message says.
   */
  send(
    records: readonly { message: Message; partition: number; bytes: number }[],
    deadline: AbortSignal,
  ): SendOutcomes {
    const mine: Pending[] = [];
    const answers: Promise<RecordOutcome>[] = [];
    const finals: Promise<RecordOutcome>[] = [];
    for (const { message, partition, bytes } of records) {
      let answer!: (outcome: RecordOutcome) => void;
      let settle!: (outcome: RecordOutcome) => void;
      answers.push(new Promise((resolve) => (answer = resolve)));
      finals.push(new Promise((resolve) => (settle = resolve)));
      const pending: Pending = {
        message,
        partition,
        bytes,
        deadline,
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
          pending.settle({ partition: pending.partition, error: notSent() });
        } else if (pending.state === 'sending') {
          pending.answer({ partition: pending.partition, error: notAcknowledgedInTime() });
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
    const cycle = this.takeCycle();
    this.sending = true;
    void this.sendCycle(cycle).finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  /** Takes queued records in order, up to the limits of each partition; a full partition keeps the rest. */
  private takeCycle(): Pending[] {
    const taken: Pending[] = [];
    const full = new Set<number>();
    const used = new Map<number, { records: number; bytes: number }>();
    const kept: Pending[] = [];
    for (const pending of this.queue) {
      const count = used.get(pending.partition) ?? { records: 0, bytes: 0 };
      const fits =
        !full.has(pending.partition) &&
        count.records < this.options.maxBatchRecords &&
        (count.records === 0 || count.bytes + pending.bytes <= this.options.maxBatchBytes);
      if (!fits) {
        full.add(pending.partition);
        kept.push(pending);
        continue;
      }
      used.set(pending.partition, { records: count.records + 1, bytes: count.bytes + pending.bytes });
      pending.state = 'sending';
      taken.push(pending);
    }
    this.queue.splice(0, this.queue.length, ...kept);
    return taken;
  }

  private async sendCycle(cycle: Pending[]): Promise<void> {
    const settling = Date.now() < this.settlingUntil;
    const groups = groupBy(cycle, (pending) =>
      settling ? pending.partition : this.options.leaderOf(pending.partition),
    );
    await Promise.all(groups.map((group) => this.sendGroup(group)));
  }

  /** Sends a group once; after a retriable failure, sends its partitions again one by one. */
  private async sendGroup(group: Pending[]): Promise<void> {
    const failure = await this.sendRequest(group);
    if (failure === undefined) return;
    if (!this.mayRetry(failure, group)) return this.fail(group, failure);
    this.settlingUntil = Date.now() + (this.options.settleMs ?? 30_000);
    this.options.leadersChanged?.();
    const partitions = groupBy(group, (pending) => pending.partition);
    await Promise.all(partitions.map((records) => this.retryPartition(records)));
  }

  /** Sends the records of one partition again, while the failure is retriable and a deadline is ahead. */
  private async retryPartition(group: Pending[]): Promise<void> {
    const { initial, max } = this.options.retryBackoffMs ?? { initial: 100, max: 1_000 };
    for (let attempt = 0; ; attempt += 1) {
      await waitOrDeadline(Math.min(max, initial * 2 ** Math.min(attempt, 16)), group);
      const failure = await this.sendRequest(group);
      if (failure === undefined) return;
      if (!this.mayRetry(failure, group)) return this.fail(group, failure);
    }
  }

  /**
   * Retriable, and some record still has a client waiting for its answer: records whose deadline
   * passed were answered "may or may not have been written" and settle with the last send.
   */
  private mayRetry(failure: unknown, group: readonly Pending[]): boolean {
    const isRetriable = this.options.isRetriable ?? isRetriableKafkaError;
    return isRetriable(failure) && group.some((pending) => !pending.deadline.aborted);
  }

  private fail(group: readonly Pending[], failure: unknown): void {
    const error = this.options.classifyError(failure);
    for (const pending of group) pending.settle({ partition: pending.partition, error });
  }

  /** One send of the records; settles them when acknowledged, else returns the failure. */
  private async sendRequest(group: Pending[]): Promise<unknown> {
    const { producer, topic, compression } = this.options;
    try {
      const acknowledged = await producer.send({
        topic,
        acks: -1,
        compression,
        messages: group.map((pending) => ({ ...pending.message, partition: pending.partition })),
      });
      const baseByPartition = new Map<number, number>();
      for (const metadata of acknowledged) {
        if (metadata.errorCode !== 0)
          throw new Error(`partition ${metadata.partition} answered error code ${metadata.errorCode}`);
        baseByPartition.set(metadata.partition, Number(metadata.baseOffset));
      }
      const nextIndex = new Map<number, number>();
      for (const pending of group) {
        const base = baseByPartition.get(pending.partition);
        if (base === undefined) throw new Error(`no acknowledgement for partition ${pending.partition}`);
        const index = nextIndex.get(pending.partition) ?? 0;
        nextIndex.set(pending.partition, index + 1);
        pending.settle({ partition: pending.partition, offset: base + index });
      }
      return undefined;
    } catch (err) {
      return err ?? new Error('send failed');
    }
  }
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => number): T[][] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(item);
  }
  return [...groups.values()];
}

/** Sleeps `ms`, or less once every record's deadline has passed. */
function waitOrDeadline(ms: number, group: readonly Pending[]): Promise<void> {
  return new Promise((resolve) => {
    const live = group.filter((pending) => !pending.deadline.aborted);
    const done = () => {
      clearTimeout(timer);
      for (const pending of live) pending.deadline.removeEventListener('abort', check);
      resolve();
    };
    const check = () => {
      if (live.every((pending) => pending.deadline.aborted)) done();
    };
    const timer = setTimeout(done, ms);
    for (const pending of live) pending.deadline.addEventListener('abort', check, { once: true });
  });
}

function notSent(): MeshError {
  return new MeshError('MESH_KAFKA_UNAVAILABLE', 'not sent: Kafka did not accept records in time', {
    headers: { 'retry-after': '1' },
  });
}

function notAcknowledgedInTime(): MeshError {
  return new MeshError(
    'MESH_KAFKA_UNAVAILABLE',
    'not acknowledged in time: the record may or may not have been written',
    { headers: { 'retry-after': '1' } },
  );
}

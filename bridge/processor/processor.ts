/**
 * One stream processor: a kafkajs consumer group member that POSTs its input records to the app
 * (CloudEvents, as push subscriptions do), produces the records the app answers with, and commits
 * the input offsets with them.
 *
 * Flow per fetched batch of a partition (`eachBatch`, auto-commit and auto-resolve off): the batch
 * is cut into units of `commitRecords`; a unit's records run in lanes (`ordering`), each with
 * retries until final (outputs, dropped, or a dead letter); then the outputs (and dead letters) of
 * the unit's final prefix are produced, in input offset order, and the offset after that prefix is
 * committed:
 * - `exactly_once`: in one transaction of the partition's transactional producer (`sendOffsets`).
 *   Any failure aborts it, drops the producer and seeks back to the unit; the partition's next run
 *   re-initialises the producer (fencing) and re-reads the committed offset, skipping what a commit
 *   whose answer was lost did commit after all. The same check runs after every assignment: a
 *   previous owner's commit may still have been under way when kafkajs read the offset.
 * - `at_least_once`: the idempotent producer sends them (acks all), then the offset is committed.
 * A partition stops early (pausing with backoff as push subscriptions do) when the app is down, a
 * poison record blocks it, a commit fails, the group rebalances, or the sidecar drains; what is
 * final is committed first.
 */
import { SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { DeepReadonly, MeshConfig } from '../../services/runtime/config.js';
import type { Logger } from '../../services/runtime/logging.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { GroupMember, tpKey } from '../consumer/group-member.js';
import { fullJitterBackoff, sleep } from '../consumer/push/backoff.js';
import {
  CLOUDEVENT_BATCH_CONTENT_TYPE,
  CLOUDEVENT_CONTENT_TYPE,
  eventId,
  toCloudEvent,
  type ConsumedRecord,
} from '../consumer/push/cloudevents.js';
import { deadLetterMessage, type DeadLetterReason } from '../consumer/push/dead-letter.js';
import type { AppClient, AttemptResult } from '../consumer/push/delivery.js';
import { laneOf, runInLanes, type Semaphore } from '../consumer/push/ordering.js';
import { recordTraceHeaders, startBatchSpan, startRecordSpan } from '../consumer/push/tracing.js';
import { processorVerdict, type PoisonReason } from './answer.js';
import { withTraceContext } from './trace-headers.js';
import { PartitionProducers, transactionalId } from './transactional.js';
import { UnitWriter, type Final, type UnitResult, type UnitSink } from './unit.js';

export type ProcessorConfig = DeepReadonly<MeshConfig['processors'][number]>;

/** Why a partition's run stopped before all its records were final. */
type Halt = 'app-down' | 'blocked' | 'stopped' | 'commit-failed';

export interface StreamProcessorOptions {
  readonly config: ProcessorConfig;
  readonly kafka: Kafka;
  readonly app: AppClient;
  /** at_least_once: the connected idempotent producer (shared by the sidecar's processors). */
  readonly producer: () => Promise<Producer>;
  /** exactly_once: makes the transactional producer of one input partition. */
  readonly transactionalProducer: (transactionalId: string) => Producer;
  readonly semaphore: Semaphore;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  readonly lagIntervalMs?: number;
}

const HEARTBEAT_INTERVAL_MS = 1_000;
/**
 * Input records whose outputs are written together while a unit runs: fewer, larger produce
 * requests; the unit's rest is written when it finishes, before the commit.
 */
const WRITE_BATCH_RECORDS = 100;

export class StreamProcessor {
  readonly name: string;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly logger: Logger;
  private readonly path: string;
  private readonly allowed: ReadonlySet<string>;
  private readonly exactlyOnce: boolean;
  private readonly producers: PartitionProducers;
  private readonly lifetime = new AbortController();
  private readonly member: GroupMember;
  /** exactly_once: partitions whose committed offset must be re-read before their next run. */
  private readonly unchecked = new Set<string>();
  private appDownStreak = 0;
  private commitFailureStreak = 0;
  private drainPromise: Promise<void> | undefined;

  constructor(private readonly options: StreamProcessorOptions) {
    const { config, kafka, app } = options;
    this.name = config.name;
    this.logger = options.logger.child({ processor: config.name, group: config.group });
    this.path = app.pathFor(config.path);
    this.allowed = new Set(config.outputTopics);
    this.exactlyOnce = config.guarantee === 'exactly_once';
    const prefix = config.transactionalIdPrefix ?? config.group;
    this.producers = new PartitionProducers(options.transactionalProducer, (topic, partition) =>
      transactionalId(prefix, config.name, topic, partition),
    );
    this.consumer = kafka.consumer({
      groupId: config.group,
      sessionTimeout: config.sessionTimeoutMs,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: 100,
      // Inputs written by another exactly-once processor: only committed records.
      readUncommitted: false,
      allowAutoTopicCreation: false,
    });
    this.admin = kafka.admin();
    this.member = new GroupMember({
      consumer: this.consumer,
      admin: this.admin,
      group: config.group,
      kind: 'processor',
      metrics: options.metrics,
      logger: this.logger,
      lifetime: this.lifetime.signal,
      topics: () => [...config.topics],
      fromBeginning: config.autoOffsetReset === 'earliest',
      maxConcurrency: config.maxConcurrency,
      lagIntervalMs: options.lagIntervalMs,
      eachBatch: (payload) => this.handleBatch(payload),
      onAssigned: () => {
        this.unchecked.clear();
        for (const k of this.member.assignment.keys()) this.unchecked.add(k);
      },
      onJoined: () => this.fenceAssigned(),
      onDisconnect: () => this.producers.releaseAll(),
    });
  }

  start(): void {
    this.member.start();
  }

  get isReady(): boolean {
    return this.member.isReady;
  }

  get notReadyReason(): string {
    return this.member.notReadyReason;
  }

  /** Stop taking records; in-flight requests finish, what is final is committed; leave the group. */
  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      this.lifetime.abort();
      this.member.pauseForDrain();
      await this.member.settled();
      await this.member.disconnect();
      this.logger.info('processor drained');
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    this.lifetime.abort();
    this.member.clearResumeTimers();
    // An open transaction is left to the partition's next owner, whose fencing aborts it.
    await this.member.disconnect();
  }

  /** exactly_once, after a join: revoked partitions' producers go, assigned ones fence their previous owners. */
  private fenceAssigned(): void {
    if (this.exactlyOnce) {
      const owned = (topic: string, partition: number) => this.member.assignment.has(tpKey(topic, partition));
      void this.producers.retainOnly(owned);
      // Fence the previous owners now, not at the first record: their open transactions end at once.
      for (const { topic, partition } of this.member.assignment.values()) {
        this.producers.acquire(topic, partition).catch((err: unknown) => {
          this.logger.warn(
            { topic, partition, err: (err as Error).message },
            'transactional producer not ready yet',
          );
        });
      }
    }
  }

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const { config } = this.options;
    if (
      this.lifetime.signal.aborted ||
      !payload.isRunning() ||
      payload.isStale() ||
      batch.messages.length === 0
    ) {
      return;
    }
    // kafkajs only heartbeats when asked: every second while this batch runs, so a rebalance is
    // noticed (the batch then stops taking records, commits what is final and rejoins).
    const batchStop = new AbortController();
    const signal = AbortSignal.any([this.lifetime.signal, batchStop.signal]);
    let heartbeatError: Error | undefined;
    const beat = setInterval(() => {
      payload.heartbeat().catch((err: unknown) => {
        heartbeatError ??= err instanceof Error ? err : new Error(String(err));
        batchStop.abort();
      });
    }, HEARTBEAT_INTERVAL_MS);
    beat.unref();

    let halt: Halt | undefined;
    let lastCommitted: string | undefined;
    try {
      let messages: readonly KafkaMessage[] = batch.messages;
      let producer: Producer | undefined;
      if (this.exactlyOnce) {
        const prepared = await this.prepareExactlyOnce(payload);
        if (!prepared) return;
        ({ producer, messages } = prepared);
      }
      for (let start = 0; start < messages.length && halt === undefined; start += config.commitRecords) {
        if (signal.aborted || payload.isStale()) break;
        const unit = messages.slice(start, start + config.commitRecords);
        const result = await this.runUnit(topic, partition, unit, signal, producer);
        halt = result.halt;
        if (result.committed === undefined) continue;
        this.commitFailureStreak = 0;
        payload.resolveOffset(result.committed);
        lastCommitted = result.committed;
      }
    } finally {
      clearInterval(beat);
    }

    if (halt === 'app-down') this.appDownStreak += 1;
    this.member.pauseAfterHalt(topic, partition, halt, config.retry, this.appDownStreak);
    if (heartbeatError !== undefined) throw heartbeatError;
    if (lastCommitted !== undefined) {
      this.options.metrics.consumerLag.set(
        { group: config.group, topic, partition: String(partition) },
        Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(lastCommitted) - 1n)),
      );
    }
    if (halt === undefined && !this.lifetime.signal.aborted) await payload.heartbeat();
  }

  /**
   * exactly_once, before a partition's records run: its transactional producer (initialised, so any
   * previous owner is fenced and its open transaction ended), and after an assignment or a failed
   * unit, the committed offset read again: records below it were committed already (a commit under
   * way when kafkajs read the offset, or one whose answer was lost) and are skipped; a fetch that
   * started past it seeks back. Undefined when the batch must not run now.
   */
  private async prepareExactlyOnce(
    payload: EachBatchPayload,
  ): Promise<{ producer: Producer; messages: readonly KafkaMessage[] } | undefined> {
    const { batch } = payload;
    const { topic, partition } = batch;
    let messages: readonly KafkaMessage[] = batch.messages;
    try {
      const producer = await this.producers.acquire(topic, partition);
      if (!this.unchecked.has(tpKey(topic, partition))) return { producer, messages };
      const committed = await this.committedOffset(topic, partition);
      this.unchecked.delete(tpKey(topic, partition));
      if (committed === undefined) return { producer, messages };
      // Where the fetch started: the first record may come later (control records, aborted ones).
      const fetchedOffset = (batch as unknown as { fetchedOffset?: string }).fetchedOffset;
      const fetchedFrom = BigInt(fetchedOffset ?? messages[0].offset);
      if (committed < fetchedFrom) {
        // Fetched past the committed offset (a position kafkajs kept): start over from it.
        this.logger.warn(
          { topic, partition, committed: String(committed), fetchedFrom: String(fetchedFrom) },
          'seeking back to the committed offset',
        );
        this.consumer.seek({ topic, partition, offset: String(committed) });
        return undefined;
      }
      if (committed > BigInt(messages[0].offset)) {
        messages = messages.filter((message) => BigInt(message.offset) >= committed);
        payload.resolveOffset(String(committed - 1n));
        if (messages.length === 0) return undefined;
      }
      return { producer, messages };
    } catch (err) {
      this.logger.warn(
        { topic, partition, err: (err as Error).message },
        'transactional producer not ready; pausing the partition',
      );
      await this.producers.release(topic, partition);
      this.unchecked.add(tpKey(topic, partition));
      this.onCommitFailure(topic, partition, messages[0].offset);
      return undefined;
    }
  }

  /**
   * Runs the records of one unit until each is final or the partition has to stop, writing their
   * outputs as they become part of the final prefix, then commits that prefix. `committed` is the
   * last offset committed; undefined when none was (nothing final, or the commit failed).
   */
  private async runUnit(
    topic: string,
    partition: number,
    unit: readonly KafkaMessage[],
    batchSignal: AbortSignal,
    producer: Producer | undefined,
  ): Promise<{ committed: string | undefined; halt: Halt | undefined }> {
    const { config, semaphore } = this.options;
    const unitStop = new AbortController();
    const signal = AbortSignal.any([batchSignal, unitStop.signal]);
    let writer: UnitWriter;
    try {
      writer = new UnitWriter(
        unit.map((m) => m.offset),
        await this.sinkFor(topic, partition, producer),
        config.deadLetterTopic,
        () => unitStop.abort(),
        WRITE_BATCH_RECORDS,
      );
    } catch (err) {
      await this.onUnitFailure(topic, partition, unit[0].offset, err);
      return { committed: undefined, halt: 'commit-failed' };
    }
    let halt: Halt | undefined;
    const haltWith = (reason: Halt) => {
      if (halt === undefined || halt === 'stopped') halt = reason;
      return false;
    };
    if (config.mode === 'batch') {
      const chunks: KafkaMessage[][] = [];
      for (let i = 0; i < unit.length; i += config.maxBatch) chunks.push(unit.slice(i, i + config.maxBatch));
      await runInLanes(
        chunks,
        () => '',
        async (chunk) => {
          if (signal.aborted) return haltWith('stopped');
          const result = await this.processBatch(
            chunk.map((message) => ({ topic, partition, message })),
            signal,
          );
          if (typeof result === 'string') return haltWith(result);
          // The answer stands for the whole request: its records go with the request's last offset.
          for (const message of chunk.slice(0, -1)) writer.final(message.offset, { kind: 'covered' });
          writer.final(chunk.at(-1)!.offset, result);
          return true;
        },
        semaphore,
      );
    } else {
      await runInLanes(
        unit,
        (message) => laneOf(config.ordering, message.key),
        async (message) => {
          if (signal.aborted) return haltWith('stopped');
          const result = await this.processRecord({ topic, partition, message }, signal);
          if (typeof result === 'string') return haltWith(result);
          writer.final(message.offset, result);
          return true;
        },
        semaphore,
      );
    }
    try {
      const result = await writer.finish();
      this.countCommitted(topic, result);
      return { committed: result.lastFinal, halt };
    } catch (err) {
      await this.onUnitFailure(topic, partition, unit[0].offset, err);
      return { committed: undefined, halt: 'commit-failed' };
    }
  }

  /** Where a unit's records go: its transaction (exactly_once), or the idempotent producer. */
  private async sinkFor(topic: string, partition: number, producer: Producer | undefined): Promise<UnitSink> {
    const { config } = this.options;
    if (producer) {
      const transaction = await producer.transaction();
      return {
        send: async (topicMessages) => {
          await transaction.sendBatch({ topicMessages, acks: -1 });
        },
        commit: async (offset) => {
          await transaction.sendOffsets({
            consumerGroupId: config.group,
            topics: [{ topic, partitions: [{ partition, offset }] }],
          });
          await transaction.commit();
        },
        abort: async () => {
          if (transaction.isActive()) await transaction.abort();
        },
      };
    }
    return {
      send: async (topicMessages) => {
        await (await this.options.producer()).sendBatch({ topicMessages, acks: -1 });
      },
      commit: async (offset) => {
        try {
          await this.consumer.commitOffsets([{ topic, partition, offset }]);
        } catch (err) {
          // The outputs are written: a later commit (or the next owner, reprocessing) covers it.
          this.logger.warn(
            { topic, partition, offset, err: (err as Error).message },
            'offset commit failed after the outputs were written',
          );
        }
      },
      abort: () => Promise.resolve(),
    };
  }

  /** A unit that could not be written or committed: nothing of it counts; run it again later. */
  private async onUnitFailure(topic: string, partition: number, from: string, err: unknown): Promise<void> {
    this.options.metrics.processorAbortedTransactions.inc({ processor: this.name });
    this.logger.warn(
      { topic, partition, from, err: (err as Error).message, guarantee: this.options.config.guarantee },
      this.exactlyOnce
        ? 'transaction aborted; the unit runs again'
        : 'writing outputs failed; the unit runs again',
    );
    if (this.exactlyOnce) {
      // Drop the producer: the next run re-initialises it (ending whatever is open) and re-reads
      // the committed offset, in case a commit whose answer was lost did succeed.
      await this.producers.release(topic, partition);
      this.unchecked.add(tpKey(topic, partition));
    }
    this.onCommitFailure(topic, partition, from);
  }

  private countCommitted(topic: string, result: UnitResult): void {
    const { config, metrics } = this.options;
    for (const [outcome, count] of Object.entries(result.counts)) {
      if (count > 0) metrics.processorProcessedRecords.inc({ processor: this.name, result: outcome }, count);
    }
    for (const [outTopic, count] of result.written) {
      if (outTopic === config.deadLetterTopic && !this.allowed.has(outTopic)) continue;
      metrics.processorProducedRecords.inc({ processor: this.name, topic: outTopic }, count);
    }
    if (result.counts.dead_letter > 0) {
      metrics.processorDeadLetters.inc({ processor: this.name, topic }, result.counts.dead_letter);
    }
  }

  /** Processes one record until its outcome is final, or the partition has to stop. */
  private async processRecord(record: ConsumedRecord, signal: AbortSignal): Promise<Final | Halt> {
    const { config, tracer } = this.options;
    const { span, headers } = startRecordSpan(tracer, record, {
      group: config.group,
      subscription: this.name,
    });
    span.setAttribute('mesh.processor', this.name);
    const body = JSON.stringify(toCloudEvent(record, recordTraceHeaders(record)));
    try {
      return await this.callApp([record], body, CLOUDEVENT_CONTENT_TYPE, headers, span, signal);
    } finally {
      span.end();
    }
  }

  /** Processes up to `maxBatch` records in one request; the answer applies to all of them. */
  private async processBatch(records: ConsumedRecord[], signal: AbortSignal): Promise<Final | Halt> {
    const { config, tracer } = this.options;
    const { span, headers } = startBatchSpan(tracer, records, {
      group: config.group,
      subscription: this.name,
    });
    span.setAttribute('mesh.processor', this.name);
    const body = JSON.stringify(records.map((record) => toCloudEvent(record, recordTraceHeaders(record))));
    try {
      return await this.callApp(records, body, CLOUDEVENT_BATCH_CONTENT_TYPE, headers, span, signal);
    } finally {
      span.end();
    }
  }

  private async callApp(
    records: readonly ConsumedRecord[],
    body: string,
    contentType: string,
    trace: Record<string, string>,
    span: Span,
    signal: AbortSignal,
  ): Promise<Final | Halt> {
    const { config, app } = this.options;
    for (let attempt = 1; ; attempt++) {
      const result = await app.post(
        this.path,
        body,
        { 'content-type': contentType, ...trace },
        config.timeoutMs,
      );
      if (result.kind === 'app-down') {
        span.addEvent('app down', { error: result.error });
        return 'app-down';
      }
      this.appDownStreak = 0;
      span.setAttribute('http.response.status_code', result.kind === 'answer' ? result.status : 0);
      const verdict =
        result.kind === 'answer' ? processorVerdict(result, this.allowed) : ({ kind: 'retry' } as const);
      if (verdict.kind === 'records') {
        return { kind: 'outputs', outputs: withTraceContext(verdict.records, trace), count: records.length };
      }
      if (verdict.kind === 'drop') {
        span.addEvent('dropped by the app');
        return { kind: 'dropped', count: records.length };
      }
      if (verdict.kind === 'retry' && attempt < config.retry.maxAttempts) {
        if (!(await sleep(this.retryWait(attempt, result), signal))) return 'stopped';
        continue;
      }
      const reason: PoisonReason | 'retries-exhausted' =
        verdict.kind === 'poison' ? verdict.reason : 'retries-exhausted';
      const detail =
        verdict.kind === 'poison'
          ? verdict.detail
          : result.kind === 'answer'
            ? `status ${result.status}`
            : result.error;
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: `${reason} after ${attempt} attempt(s): ${detail}`,
      });
      return this.onPoison(
        records,
        { reason, status: result.kind === 'answer' ? result.status : 'error', attempts: attempt },
        detail,
      );
    }
  }

  private retryWait(attempt: number, result: AttemptResult): number {
    const { retry } = this.options.config;
    const jittered = fullJitterBackoff(retry, attempt - 1);
    const asked = result.kind === 'answer' ? result.retryAfterMs : undefined;
    return asked === undefined ? jittered : Math.min(retry.maxBackoffMs, Math.max(jittered, asked));
  }

  private onPoison(records: readonly ConsumedRecord[], why: DeadLetterReason, detail: string): Final | Halt {
    const { config } = this.options;
    const ids = records.map(eventId);
    const policy = config.onPoison ?? (config.deadLetterTopic ? 'deadLetter' : 'block');
    switch (policy) {
      case 'drop':
        this.logger.warn({ ids, ...why, detail }, 'dropping poison record(s)');
        return { kind: 'dropped', count: records.length };
      case 'block':
        this.logger.error({ ids, ...why, detail }, 'poison record blocks its partition (onPoison: block)');
        return 'blocked';
      case 'deadLetter':
        this.logger.warn({ ids, ...why, detail }, 'poison record(s) go to the dead-letter topic');
        return {
          kind: 'dead-letter',
          count: records.length,
          messages: records.map((record) => {
            const message = deadLetterMessage(record, why);
            return { ...message, headers: { ...message.headers, 'mesh.dlq.detail': detail } };
          }),
        };
    }
  }

  /** Seeks back to `offset` and pauses the partition with a growing backoff. */
  private onCommitFailure(topic: string, partition: number, offset: string): void {
    if (this.lifetime.signal.aborted) return;
    this.consumer.seek({ topic, partition, offset });
    this.commitFailureStreak += 1;
    this.member.pauseWithBackoff(
      topic,
      partition,
      this.options.config.retry,
      this.commitFailureStreak,
      'commit failed',
    );
  }

  /** The group's committed offset of a partition (the next record to process), if any. */
  private async committedOffset(topic: string, partition: number): Promise<bigint | undefined> {
    const [entry] = await this.admin.fetchOffsets({ groupId: this.options.config.group, topics: [topic] });
    const offset = entry?.partitions.find((p) => p.partition === partition)?.offset;
    return offset === undefined || BigInt(offset) < 0n ? undefined : BigInt(offset);
  }
}

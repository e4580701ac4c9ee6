/**
 * One push subscription: a kafkajs consumer group member that delivers its partitions' records to
 * the app and commits only final offsets (contract section 7).
 *
 * Flow per fetched batch of a partition (kafkajs `eachBatch`, auto-commit and auto-resolve off):
 * records run in lanes (`ordering`), each delivered with retries until its outcome is final; the
 * final prefix is resolved (so a refetch starts after it) and handed to the committer. A partition
 * stops early when the app is down (pause, resume with growing backoff, no attempt counted), when
 * a poison record blocks it (pause, try again after `retry.maxBackoffMs`), when the group
 * rebalances (in-flight requests finish, final offsets are committed, then the batch returns and
 * kafkajs rejoins) and when the sidecar drains.
 */
import { performance } from 'node:perf_hooks';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import type { Counter, Histogram } from 'prom-client';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { DeepReadonly, MeshConfig } from '../../../services/runtime/config.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import { backoffCap, fullJitterBackoff, sleep } from './backoff.js';
import {
  CLOUDEVENT_BATCH_CONTENT_TYPE,
  CLOUDEVENT_CONTENT_TYPE,
  eventId,
  toCloudEvent,
  type ConsumedRecord,
} from './cloudevents.js';
import { OffsetCommitter, PartitionProgress } from './commit-tracker.js';
import { deadLetterMessage, type DeadLetterReason } from './dead-letter.js';
import type { AppClient, AttemptResult } from './delivery.js';
import { laneOf, runInLanes, type Semaphore } from './ordering.js';
import { batchOutcomes, singleOutcome, type Outcome } from './outcome.js';
import { recordTraceHeaders, startBatchSpan, startRecordSpan } from './tracing.js';

export type SubscriptionConfig = DeepReadonly<MeshConfig['subscriptions'][number]>;
export type PoisonPolicy = 'deadLetter' | 'drop' | 'block';

/** Why a partition's run stopped before all its records were final. */
type Halt = 'app-down' | 'blocked' | 'stopped';
type RecordResult = 'final' | Halt;

export interface PushSubscriptionOptions {
  readonly config: SubscriptionConfig;
  readonly kafka: Kafka;
  readonly app: AppClient;
  /** The connected dead-letter producer (shared by the sidecar's subscriptions). */
  readonly deadLetterProducer: () => Promise<Producer>;
  readonly semaphore: Semaphore;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  /** Session timeout of the group member: how long a killed sidecar holds its partitions. */
  readonly sessionTimeoutMs?: number;
  readonly lagIntervalMs?: number;
}

/** How often a long-running batch heartbeats (kafkajs has no background heartbeat). */
const HEARTBEAT_INTERVAL_MS = 1_000;
const CONNECT_BACKOFF = { initialBackoffMs: 250, maxBackoffMs: 5_000 };

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export function poisonPolicy(config: SubscriptionConfig): PoisonPolicy {
  return config.onPoison ?? (config.deadLetterTopic ? 'deadLetter' : 'block');
}

export class PushSubscription {
  readonly name: string;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly committer: OffsetCommitter;
  private readonly logger: Logger;
  private readonly policy: PoisonPolicy;
  private readonly path: string;
  /** Aborted on drain/stop: backoff waits end, no new record starts. */
  private readonly lifetime = new AbortController();
  private readonly assignment = new Map<string, { topic: string; partition: number }>();
  private readonly resumeTimers = new Map<string, NodeJS.Timeout>();
  private readonly activeBatches = new Set<Promise<unknown>>();
  private joined = false;
  private crashed: string | undefined;
  private connecting: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private appDownStreak = 0;
  private drainPromise: Promise<void> | undefined;
  private stopped = false;
  /** Metric children resolved once: label hashing per record is measurable on the hot path. */
  private readonly counters: Record<'success' | 'retry' | 'dead_letter' | 'dropped', Counter.Internal>;
  private readonly durations: Histogram.Internal<'subscription'>;

  constructor(private readonly options: PushSubscriptionOptions) {
    const { config, kafka, app } = options;
    this.name = config.name;
    this.logger = options.logger.child({ subscription: config.name, group: config.group });
    this.policy = poisonPolicy(config);
    this.path = app.pathFor(config.path);
    const { subscriptionDeliveries, subscriptionDeliveryDuration } = options.metrics;
    const child = (result: string) => subscriptionDeliveries.labels({ subscription: config.name, result });
    this.counters = {
      success: child('success'),
      retry: child('retry'),
      dead_letter: child('dead_letter'),
      dropped: child('dropped'),
    };
    this.durations = subscriptionDeliveryDuration.labels({ subscription: config.name });
    this.consumer = kafka.consumer({
      groupId: config.group,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: config.mode === 'batch' ? Math.max(config.maxBatchWaitMs, 10) : 100,
      allowAutoTopicCreation: false,
    });
    this.admin = kafka.admin();
    this.committer = new OffsetCommitter({
      intervalMs: config.commitIntervalMs,
      maxRecords: config.commitRecords,
      commit: (offsets) => this.consumer.commitOffsets(offsets),
      onError: (err) => this.logger.warn({ err: (err as Error).message }, 'offset commit failed; will retry'),
    });
    const { events } = this.consumer;
    this.consumer.on(events.GROUP_JOIN, ({ payload }) => this.onJoin(payload.memberAssignment));
    this.consumer.on(events.REBALANCING, () => {
      // Best effort: batches flush their own offsets before kafkajs rejoins; this covers offsets
      // that became final between batches.
      void this.committer.flush().catch(() => undefined);
    });
    this.consumer.on(events.CRASH, ({ payload }) => {
      this.crashed = payload.error.message;
      if (!payload.restart) this.joined = false;
      this.logger.error(
        { err: payload.error.message, restart: payload.restart },
        'subscription consumer crashed',
      );
    });
    this.consumer.on(events.STOP, () => {
      this.joined = false;
    });
  }

  start(): void {
    this.connecting = this.connectUntilRunning();
    this.lagTimer = setInterval(() => void this.updateLag(), this.options.lagIntervalMs ?? 5_000);
    this.lagTimer.unref();
  }

  get isReady(): boolean {
    return this.joined && !this.stopped;
  }

  get notReadyReason(): string {
    return this.crashed ? `consumer crashed: ${this.crashed}` : 'not joined to its consumer group yet';
  }

  /** Stop taking records, let in-flight deliveries finish, commit the final offsets, leave the group. */
  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      this.lifetime.abort();
      for (const timer of this.resumeTimers.values()) clearTimeout(timer);
      this.resumeTimers.clear();
      this.pauseAll();
      await this.connecting;
      await Promise.allSettled([...this.activeBatches]);
      await this.committer.flush().catch((err: unknown) => {
        this.logger.error({ err: (err as Error).message }, 'final offset commit failed on drain');
      });
      this.committer.stop();
      await this.disconnect();
      this.logger.info('subscription drained');
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    this.lifetime.abort();
    for (const timer of this.resumeTimers.values()) clearTimeout(timer);
    this.committer.stop();
    await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.lagTimer);
    await Promise.allSettled([this.consumer.disconnect(), this.admin.disconnect()]);
    this.joined = false;
    this.options.metrics.subscriptionPausedPartitions.set({ subscription: this.name }, 0);
  }

  private async connectUntilRunning(): Promise<void> {
    const { config } = this.options;
    for (let attempt = 0; !this.lifetime.signal.aborted; attempt++) {
      try {
        await this.consumer.connect();
        await this.admin.connect();
        await this.consumer.subscribe({
          topics: config.topics ? [...config.topics] : [new RegExp(`^(?:${config.topicPattern})$`)],
          fromBeginning: config.autoOffsetReset === 'earliest',
        });
        this.committer.start();
        await this.consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: config.maxConcurrency,
          eachBatch: (payload) => this.trackBatch(payload),
        });
        return;
      } catch (err) {
        this.crashed = (err as Error).message;
        this.logger.warn({ err: this.crashed, attempt }, 'subscription cannot start consuming yet');
        await sleep(backoffCap(CONNECT_BACKOFF, attempt), this.lifetime.signal);
      }
    }
  }

  private onJoin(memberAssignment: Record<string, number[]>): void {
    this.joined = true;
    this.crashed = undefined;
    const before = [...this.assignment.values()];
    this.assignment.clear();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const partition of partitions) this.assignment.set(tpKey(topic, partition), { topic, partition });
    }
    this.committer.retainOnly((topic, partition) => this.assignment.has(tpKey(topic, partition)));
    for (const { topic, partition } of before) {
      if (this.assignment.has(tpKey(topic, partition))) continue;
      this.options.metrics.consumerLag.remove({
        group: this.options.config.group,
        topic,
        partition: String(partition),
      });
      const timer = this.resumeTimers.get(tpKey(topic, partition));
      if (timer) {
        clearTimeout(timer);
        this.resumeTimers.delete(tpKey(topic, partition));
        this.consumer.resume([{ topic, partitions: [partition] }]);
      }
    }
    this.updatePausedGauge();
    this.logger.info({ assignment: memberAssignment }, 'subscription joined its group');
  }

  private trackBatch(payload: EachBatchPayload): Promise<void> {
    const work = this.handleBatch(payload);
    this.activeBatches.add(work);
    void work.then(
      () => this.activeBatches.delete(work),
      () => this.activeBatches.delete(work),
    );
    return work;
  }

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const resolveOffset = (offset: string) => payload.resolveOffset(offset);
    const heartbeat = () => payload.heartbeat();
    const isRunning = () => payload.isRunning();
    const isStale = () => payload.isStale();
    const { topic, partition } = batch;
    const { config, semaphore } = this.options;
    if (this.lifetime.signal.aborted || !isRunning() || isStale() || batch.messages.length === 0) return;

    // Rebalance detection while records are in flight: kafkajs only heartbeats when asked.
    const batchStop = new AbortController();
    const signal = AbortSignal.any([this.lifetime.signal, batchStop.signal]);
    let heartbeatError: Error | undefined;
    const beat = setInterval(() => {
      heartbeat().catch((err: unknown) => {
        heartbeatError ??= err instanceof Error ? err : new Error(String(err));
        batchStop.abort();
      });
    }, HEARTBEAT_INTERVAL_MS);
    beat.unref();

    const progress = new PartitionProgress(batch.messages.map((m) => m.offset));
    const markFinal = (offsets: readonly string[]) => {
      let last: string | undefined;
      for (const offset of offsets) last = progress.markFinal(offset) ?? last;
      if (last !== undefined) {
        resolveOffset(last);
        this.committer.advance(topic, partition, last, offsets.length);
      }
    };
    let halt: Halt | undefined;
    const haltWith = (reason: Halt) => {
      // app-down/blocked win over a plain stop: they decide how the partition pauses.
      if (halt === undefined || halt === 'stopped') halt = reason;
      return false;
    };

    try {
      if (config.mode === 'batch') {
        const chunks: KafkaMessage[][] = [];
        for (let i = 0; i < batch.messages.length; i += config.maxBatch) {
          chunks.push(batch.messages.slice(i, i + config.maxBatch));
        }
        await runInLanes(
          chunks,
          () => '',
          async (chunk) => {
            if (signal.aborted || isStale()) return haltWith('stopped');
            const result = await this.deliverBatch(
              chunk.map((message) => ({ topic, partition, message })),
              signal,
              markFinal,
            );
            return result === 'final' ? true : haltWith(result);
          },
          semaphore,
        );
      } else {
        await runInLanes(
          batch.messages,
          (message) => laneOf(config.ordering, message.key),
          async (message) => {
            if (signal.aborted || isStale()) return haltWith('stopped');
            const result = await this.deliverRecord({ topic, partition, message }, signal);
            if (result !== 'final') return haltWith(result);
            markFinal([message.offset]);
            return true;
          },
          semaphore,
        );
      }
    } finally {
      clearInterval(beat);
    }

    if (halt === 'app-down') {
      this.appDownStreak += 1;
      const cap = backoffCap(config.retry, this.appDownStreak - 1);
      this.pausePartition(
        topic,
        partition,
        Math.max(1, Math.round(cap / 2 + Math.random() * (cap / 2))),
        'app down',
      );
    } else if (halt === 'blocked') {
      this.pausePartition(topic, partition, config.retry.maxBackoffMs, 'blocked on a poison record');
    }

    if (heartbeatError !== undefined) {
      // Revoke: in-flight deliveries are done; commit what is final while still a member, then let
      // kafkajs rejoin.
      await this.committer.flush().catch(() => undefined);
      throw heartbeatError;
    }
    if (!halt) {
      this.options.metrics.consumerLag.set(
        { group: config.group, topic, partition: String(partition) },
        Math.max(
          0,
          Number(BigInt(batch.highWatermark) - BigInt(progress.lastFinal ?? batch.messages[0].offset) - 1n),
        ),
      );
      try {
        await heartbeat();
      } catch (err) {
        await this.committer.flush().catch(() => undefined);
        throw err;
      }
    }
  }

  /** Delivers one record until its outcome is final, or the partition has to stop. */
  private async deliverRecord(record: ConsumedRecord, signal: AbortSignal): Promise<RecordResult> {
    const { config, tracer } = this.options;
    const { span, headers } = startRecordSpan(tracer, record, {
      group: config.group,
      subscription: this.name,
    });
    const body = JSON.stringify(toCloudEvent(record, recordTraceHeaders(record)));
    try {
      for (let attempt = 1; ; attempt++) {
        const result = await this.attempt(body, CLOUDEVENT_CONTENT_TYPE, headers);
        if (result.kind === 'app-down') {
          span.addEvent('app down', { error: result.error });
          return 'app-down';
        }
        this.appDownStreak = 0;
        const outcome: Outcome = result.kind === 'answer' ? singleOutcome(result) : 'retry';
        const status = result.kind === 'answer' ? result.status : 'error';
        span.setAttribute('http.response.status_code', result.kind === 'answer' ? result.status : 0);
        if (outcome === 'success' || outcome === 'drop') {
          this.count(outcome === 'success' ? 'success' : 'dropped');
          if (outcome === 'drop') span.addEvent('dropped by the app');
          return 'final';
        }
        if (outcome === 'retry' && attempt < config.retry.maxAttempts) {
          this.count('retry');
          const waited = await sleep(this.retryWait(attempt, result), signal);
          if (!waited) return 'stopped';
          continue;
        }
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${outcome} after ${attempt} attempt(s)` });
        return await this.onPoison(
          [record],
          {
            reason: outcome === 'poison' ? 'poison' : 'retries-exhausted',
            status,
            attempts: attempt,
          },
          signal,
        );
      }
    } finally {
      span.end();
    }
  }

  /**
   * Delivers up to `maxBatch` records in one request; events the app answers RETRY for are sent
   * again (alone), poison ones go to `onPoison`. Final records are reported through `markFinal`.
   */
  private async deliverBatch(
    records: ConsumedRecord[],
    signal: AbortSignal,
    markFinal: (offsets: readonly string[]) => void,
  ): Promise<RecordResult> {
    const { config, tracer } = this.options;
    const { span, headers } = startBatchSpan(tracer, records, {
      group: config.group,
      subscription: this.name,
    });
    const events = new Map(
      records.map((record) => [
        eventId(record),
        { record, event: toCloudEvent(record, recordTraceHeaders(record)) },
      ]),
    );
    let pending = [...events.keys()];
    try {
      for (let attempt = 1; ; attempt++) {
        const body = JSON.stringify(pending.map((id) => events.get(id)!.event));
        const result = await this.attempt(body, CLOUDEVENT_BATCH_CONTENT_TYPE, headers);
        if (result.kind === 'app-down') return 'app-down';
        this.appDownStreak = 0;
        const outcomes =
          result.kind === 'answer'
            ? batchOutcomes(result, pending)
            : new Map<string, Outcome>(pending.map((id) => [id, 'retry']));
        const status = result.kind === 'answer' ? result.status : 'error';
        const done: string[] = [];
        const retry: string[] = [];
        const poison: string[] = [];
        for (const id of pending) {
          const outcome = outcomes.get(id)!;
          if (outcome === 'success' || outcome === 'drop') {
            this.count(outcome === 'success' ? 'success' : 'dropped');
            done.push(events.get(id)!.record.message.offset);
          } else if (outcome === 'retry') retry.push(id);
          else poison.push(id);
        }
        markFinal(done);
        const exhausted = retry.length > 0 && attempt >= config.retry.maxAttempts;
        const failed = exhausted ? [...poison, ...retry] : poison;
        if (failed.length > 0) {
          const verdict = await this.onPoison(
            failed.map((id) => events.get(id)!.record),
            {
              reason: exhausted && poison.length === 0 ? 'retries-exhausted' : 'poison',
              status,
              attempts: attempt,
            },
            signal,
          );
          if (verdict !== 'final') return verdict;
          markFinal(failed.map((id) => events.get(id)!.record.message.offset));
        }
        if (exhausted || retry.length === 0) return 'final';
        pending = retry;
        for (let i = 0; i < retry.length; i++) this.count('retry');
        if (!(await sleep(this.retryWait(attempt, result), signal))) return 'stopped';
      }
    } finally {
      span.end();
    }
  }

  private async attempt(
    body: string,
    contentType: string,
    trace: Record<string, string>,
  ): Promise<AttemptResult> {
    const { app, config } = this.options;
    const started = performance.now();
    const result = await app.post(
      this.path,
      body,
      { 'content-type': contentType, ...trace },
      config.timeoutMs,
    );
    this.durations.observe((performance.now() - started) / 1_000);
    return result;
  }

  private retryWait(attempt: number, result: AttemptResult): number {
    const { retry } = this.options.config;
    const jittered = fullJitterBackoff(retry, attempt - 1);
    const asked = result.kind === 'answer' ? result.retryAfterMs : undefined;
    return asked === undefined ? jittered : Math.min(retry.maxBackoffMs, Math.max(jittered, asked));
  }

  /** What happens to records that are poison or out of attempts; `final` once they are dealt with. */
  private async onPoison(
    records: ConsumedRecord[],
    why: DeadLetterReason,
    signal: AbortSignal,
  ): Promise<RecordResult> {
    const { config } = this.options;
    const ids = records.map(eventId);
    switch (this.policy) {
      case 'drop':
        this.logger.warn({ ids, ...why }, 'dropping poison record(s)');
        for (let i = 0; i < records.length; i++) this.count('dropped');
        return 'final';
      case 'block':
        this.logger.error({ ids, ...why }, 'poison record blocks its partition (onPoison: block)');
        return 'blocked';
      case 'deadLetter': {
        const topic = config.deadLetterTopic!;
        for (let attempt = 0; ; attempt++) {
          if (signal.aborted) return 'stopped';
          try {
            const producer = await this.options.deadLetterProducer();
            await producer.send({
              topic,
              acks: -1,
              messages: records.map((record) => deadLetterMessage(record, why)),
            });
            break;
          } catch (err) {
            // Not final: the source offset must not be committed until the dead letter is written.
            this.logger.error(
              { ids, topic, err: (err as Error).message, attempt },
              'dead-letter write failed; retrying',
            );
            if (!(await sleep(fullJitterBackoff(config.retry, attempt), signal))) return 'stopped';
          }
        }
        this.logger.warn({ ids, topic, ...why }, 'record(s) written to the dead-letter topic');
        for (const record of records) {
          this.count('dead_letter');
          this.options.metrics.subscriptionDeadLetters.inc({ subscription: this.name, topic: record.topic });
        }
        return 'final';
      }
    }
  }

  private count(result: 'success' | 'retry' | 'dead_letter' | 'dropped'): void {
    this.counters[result].inc();
  }

  private pausePartition(topic: string, partition: number, delayMs: number, reason: string): void {
    if (this.lifetime.signal.aborted) return;
    const k = tpKey(topic, partition);
    this.consumer.pause([{ topic, partitions: [partition] }]);
    clearTimeout(this.resumeTimers.get(k));
    this.logger.warn({ topic, partition, resumeInMs: delayMs, reason }, 'partition paused');
    const timer = setTimeout(() => {
      this.resumeTimers.delete(k);
      this.updatePausedGauge();
      if (this.lifetime.signal.aborted) return;
      this.consumer.resume([{ topic, partitions: [partition] }]);
    }, delayMs);
    timer.unref();
    this.resumeTimers.set(k, timer);
    this.updatePausedGauge();
  }

  private pauseAll(): void {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of this.assignment.values()) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    if (byTopic.size > 0) {
      this.consumer.pause([...byTopic].map(([topic, partitions]) => ({ topic, partitions })));
    }
  }

  private updatePausedGauge(): void {
    this.options.metrics.subscriptionPausedPartitions.set(
      { subscription: this.name },
      this.resumeTimers.size,
    );
  }

  /** Lag from the committed offsets (end offset minus committed), so it keeps growing while paused. */
  private async updateLag(): Promise<void> {
    if (!this.joined || this.stopped || this.assignment.size === 0) return;
    const { config, metrics } = this.options;
    const topics = [...new Set([...this.assignment.values()].map((tp) => tp.topic))];
    try {
      const committed = await this.admin.fetchOffsets({ groupId: config.group, topics });
      for (const topic of topics) {
        const ends = await this.admin.fetchTopicOffsets(topic);
        const committedByPartition = new Map(
          committed.find((entry) => entry.topic === topic)?.partitions.map((p) => [p.partition, p.offset]) ??
            [],
        );
        for (const end of ends) {
          if (!this.assignment.has(tpKey(topic, end.partition))) continue;
          const at = committedByPartition.get(end.partition);
          const from = at === undefined || Number(at) < 0 ? Number(end.low) : Number(at);
          metrics.consumerLag.set(
            { group: config.group, topic, partition: String(end.partition) },
            Math.max(0, Number(end.high) - from),
          );
        }
      }
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'consumer lag not updated');
    }
  }
}

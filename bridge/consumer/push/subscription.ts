/**
 * One push subscription: a kafkajs consumer group member that delivers its partitions' records to
 * the app and commits only final offsets (contract section 7).
 *
 * Flow per fetched batch of a partition (kafkajs `eachBatch`, auto-commit and auto-resolve off): the
 * records go into the partition's bounded `PartitionFeed`, which delivers them in lanes (`ordering`)
 * with retries; the handler resolves the records it handed over (with auto-commit off that only
 * moves the fetch position) and returns, so kafkajs fetches the next batch while deliveries run.
 * When the feed is full the handler waits for room (heartbeating). A partition without a backlog
 * beyond the batch waits until its records are final before the handler returns: nothing to prefetch,
 * and a rebalance is then noticed inside the handler. Commits follow final outcomes only
 * (`OffsetCommitter`). A feed halts when the app is down (pause, resume with growing backoff, no
 * attempt counted), when a poison record blocks it (pause, try again after `retry.maxBackoffMs`),
 * when the group rebalances and when the sidecar drains: no delivery starts, the queued records are
 * dropped, deliveries in flight finish, and the partition is sought back to its first record that is
 * not final.
 *
 * Rebalance: noticed by a heartbeat inside a handler, every feed halts, deliveries in flight finish
 * (bounded), the final offsets are committed and only then does the handler rethrow, so kafkajs
 * rejoins after the commit. Noticed by kafkajs between handlers (its own heartbeat), the final
 * offsets are committed at once (ahead of kafkajs' FindCoordinator + JoinGroup) and every feed
 * halts. After the rejoin (GROUP_JOIN) kept partitions are sought to where their feed continues.
 */
import { performance } from 'node:perf_hooks';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import type { Counter, Histogram } from 'prom-client';
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import type { DeepReadonly, MeshConfig } from '../../../services/runtime/config.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import { GroupMember, tpKey } from '../group-member.js';
import { fullJitterBackoff, sleep } from './backoff.js';
import {
  CLOUDEVENT_BATCH_CONTENT_TYPE,
  CLOUDEVENT_CONTENT_TYPE,
  cloudEventBytes,
  CloudEventBatch,
  eventId,
  type ConsumedRecord,
} from './cloudevents.js';
import { OffsetCommitter } from './commit-tracker.js';
import { deadLetterMessage, type DeadLetterReason } from './dead-letter.js';
import type { AppClient, AttemptResult } from './delivery.js';
import {
  PartitionFeed,
  type DeliveryFormat,
  type DeliveryResult,
  type FeedCapacity,
  type Halt,
} from './feed.js';
import { laneOf, type Semaphore } from './ordering.js';
import { batchOutcomes, singleOutcome, type Outcome } from './outcome.js';
import { recordTraceHeaders, startBatchSpan, startRecordSpan } from './tracing.js';
import { lightmeshFormat } from '../../lightmesh/subscription-mode.js';

export type SubscriptionConfig = DeepReadonly<MeshConfig['subscriptions'][number]>;
export type PoisonPolicy = 'deadLetter' | 'drop' | 'block';

type RecordResult = DeliveryResult;

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
  /** Bound of each partition's prefetch queue (records taken and not final; bytes not delivered). */
  readonly prefetch?: Partial<FeedCapacity>;
  /** The app's base URL (`ingress.target`): `mode: lightmesh` checks its health path there. */
  readonly appTarget?: string;
}

/** How often a long-running batch heartbeats (kafkajs has no background heartbeat). */
const HEARTBEAT_INTERVAL_MS = 1_000;
/** Default prefetch bound per partition: records (at least this many batches' worth) and bytes. */
const PREFETCH_RECORDS = 5_000;
const PREFETCH_BATCHES = 50;
const PREFETCH_BYTES = 4 << 20;
/** The longest a rebalance waits for the group coordinator to take the final offsets. */
const REBALANCE_COMMIT_WAIT_MS = 5_000;
/** Heartbeat errors after which this member may no longer own its partitions. */
const MEMBERSHIP_LOST = new Set([
  'REBALANCE_IN_PROGRESS',
  'NOT_COORDINATOR_FOR_GROUP',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
]);

const membershipLost = (err: unknown) =>
  MEMBERSHIP_LOST.has((err as { type?: string } | undefined)?.type ?? '');

/** Resolves when `promise` settles or after `ms`, whichever is first. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

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
  private readonly member: GroupMember;
  private readonly feeds = new Map<string, { topic: string; partition: number; feed: PartitionFeed }>();
  private readonly format: DeliveryFormat;
  private readonly capacity: FeedCapacity;
  private quiescing: Promise<void> | undefined;
  private appDownStreak = 0;
  private drainPromise: Promise<void> | undefined;
  /** Metric children resolved once: label hashing per record is measurable on the hot path. */
  private readonly counters: Record<'success' | 'retry' | 'dead_letter' | 'dropped', Counter.Internal>;
  private readonly durations: Histogram.Internal<'subscription'>;
  /** Bodies built ahead for a lane's next batch (`prepare`), by the batch's first record. */
  private readonly preparedBatches = new WeakMap<ConsumedRecord, { size: number; batch: CloudEventBatch }>();

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
    this.format = this.deliveryFormat();
    this.capacity = {
      records:
        options.prefetch?.records ?? Math.max(PREFETCH_RECORDS, PREFETCH_BATCHES * this.format.maxRecords),
      bytes: options.prefetch?.bytes ?? PREFETCH_BYTES,
    };
    this.consumer = kafka.consumer({
      groupId: config.group,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: config.mode === 'single' ? 100 : Math.max(config.maxBatchWaitMs, 10),
      allowAutoTopicCreation: false,
    });
    this.admin = kafka.admin();
    this.committer = new OffsetCommitter({
      intervalMs: config.commitIntervalMs,
      maxRecords: config.commitRecords,
      commit: (offsets) => this.consumer.commitOffsets(offsets),
      onError: (err) => this.logger.warn({ err: (err as Error).message }, 'offset commit failed; will retry'),
    });
    this.member = new GroupMember({
      consumer: this.consumer,
      admin: this.admin,
      group: config.group,
      kind: 'subscription',
      metrics: options.metrics,
      logger: this.logger,
      lifetime: this.lifetime.signal,
      topics: () => (config.topics ? [...config.topics] : [new RegExp(`^(?:${config.topicPattern})$`)]),
      fromBeginning: config.autoOffsetReset === 'earliest',
      maxConcurrency: config.maxConcurrency,
      lagIntervalMs: options.lagIntervalMs,
      eachBatch: (payload) => this.handleBatch(payload),
      beforeRun: () => this.committer.start(),
      // kafkajs leaves the group (and rejoins when it restarts): stop the queues, commit what is final.
      onCrash: () => void this.quiesce(),
      onAssigned: () => this.onAssigned(),
      onPausedChange: () => this.updatePausedGauge(),
      onDisconnect: () => {
        this.options.metrics.subscriptionPausedPartitions.set({ subscription: this.name }, 0);
      },
    });
    this.consumer.on(this.consumer.events.REBALANCING, () => {
      // kafkajs noticed the rebalance between handlers and is about to rejoin: the final offsets go
      // out now (ahead of its FindCoordinator + JoinGroup), no delivery starts any more.
      void this.committer.flush(true).catch(() => undefined);
      void this.quiesce();
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

  /** Membership, assigned and paused partitions (`topic\0partition` keys), for the status page. */
  statusSnapshot(): { joined: boolean; crashed: string | null; assigned: string[]; paused: string[] } {
    return {
      joined: this.member.isReady,
      crashed: this.member.crashed ?? null,
      assigned: [...this.member.assignment.keys()],
      paused: this.member.pausedKeys(),
    };
  }

  /** Stop taking records, let in-flight deliveries finish, commit the final offsets, leave the group. */
  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      this.lifetime.abort();
      this.member.pauseForDrain();
      // Leaving for good: deliver what is queued below records already delivered, so the final
      // commit covers every record this member delivered and the next owner repeats none of them.
      this.haltFeeds(true);
      await this.member.settled();
      await Promise.allSettled([...this.feeds.values()].map(({ feed }) => feed.settled()));
      await this.committer.flush().catch((err: unknown) => {
        this.logger.error({ err: (err as Error).message }, 'final offset commit failed on drain');
      });
      this.committer.stop();
      await this.member.disconnect();
      this.logger.info('subscription drained');
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    this.lifetime.abort();
    this.haltFeeds();
    this.member.clearResumeTimers();
    this.committer.stop();
    await this.member.disconnect();
  }

  /** After a join: revoked partitions' feeds go, kept ones continue where their feed does. */
  private onAssigned(): void {
    const { assignment } = this.member;
    this.committer.retainOnly((topic, partition) => assignment.has(tpKey(topic, partition)));
    for (const [k, { topic, partition, feed }] of this.feeds) {
      if (!assignment.has(k)) {
        // Revoked: whatever it still finishes is no longer ours to commit (onFinal checks).
        this.feeds.delete(k);
        feed.halt('stopped');
        continue;
      }
      // Kept: the new generation would fetch from the committed offset; continue where the feed does
      // instead (a halting feed seeks when it settles).
      const position = feed.position;
      if (position !== undefined) this.seek(topic, partition, position);
    }
  }

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const stale = () => this.lifetime.signal.aborted || !payload.isRunning() || payload.isStale();
    if (stale() || batch.messages.length === 0) return;
    const feed = this.feedFor(topic, partition);

    let handedOver: string | undefined;
    let stopped = false;
    for (const message of batch.messages) {
      while (feed.full && !stopped) {
        // Back-pressure: the fetch position stays at the records not taken.
        await this.whileBeating(payload, feed.space());
        stopped = stale();
      }
      if (stopped || !feed.push({ topic, partition, message })) break;
      handedOver = message.offset;
    }
    // Auto-commit is off: this only moves the fetch position past the records the feed took. A halt
    // seeks back to the first record that is not final.
    if (handedOver !== undefined && !payload.isStale()) payload.resolveOffset(handedOver);

    const last = batch.messages[batch.messages.length - 1].offset;
    if (!stopped && BigInt(last) + 1n >= BigInt(batch.highWatermark)) {
      // No backlog beyond this batch: nothing to prefetch; hold the handler until the records are
      // final, so a rebalance meanwhile is noticed here and committed before kafkajs rejoins.
      await this.whileBeating(payload, feed.idle());
    }
    // Heartbeat here rather than in kafkajs after the return: a rebalance is then handled above.
    await this.beat(payload);
    if (feed.lastFinal !== undefined) {
      this.options.metrics.consumerLag.set(
        { group: this.options.config.group, topic, partition: String(partition) },
        Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(feed.lastFinal) - 1n)),
      );
    }
  }

  /** Single or batch CloudEvents: the formats this subscription can deliver in. */
  private deliveryFormat(): DeliveryFormat {
    const { config } = this.options;
    if (config.mode === 'lightmesh') {
      // The light-mesh reactive consumer contract (bridge/lightmesh/subscription-mode.ts).
      const { app, appTarget, deadLetterProducer, metrics, logger, tracer } = this.options;
      const target = appTarget ?? 'http://127.0.0.1:8080';
      return lightmeshFormat(config, { app, target, deadLetterProducer, metrics, logger, tracer });
    }
    if (config.mode === 'batch') {
      return {
        maxRecords: config.maxBatch,
        laneOf: () => '',
        deliver: (records, signal, markFinal) => this.deliverBatch(records, signal, markFinal),
        prepare: (records) => {
          if (records.length === 0 || this.preparedBatches.has(records[0])) return;
          this.preparedBatches.set(records[0], {
            size: records.length,
            batch: CloudEventBatch.of(records, recordTraceHeaders),
          });
        },
      };
    }
    return {
      maxRecords: 1,
      laneOf: (record) => laneOf(config.ordering, record.message.key),
      deliver: async (records, signal, markFinal) => {
        const record = records[0];
        const result = await this.deliverRecord(record, signal);
        if (result === 'final') markFinal([record.message.offset]);
        return result;
      },
    };
  }

  private feedFor(topic: string, partition: number): PartitionFeed {
    const k = tpKey(topic, partition);
    const existing = this.feeds.get(k);
    if (existing) return existing.feed;
    const current = () => this.feeds.get(k)?.feed === feed;
    const feed: PartitionFeed = new PartitionFeed({
      format: this.format,
      semaphore: this.options.semaphore,
      capacity: this.capacity,
      onFinal: (lastFinal, count) => {
        if (current()) this.committer.advance(topic, partition, lastFinal, count);
      },
      onHalt: (reason) => {
        // Stop fetching at once; the resume timer starts when the deliveries in flight are done.
        if (reason !== 'stopped' && current() && !this.lifetime.signal.aborted) {
          this.consumer.pause([{ topic, partitions: [partition] }]);
        }
      },
      onSettled: (reason, resumeFrom) => {
        if (current()) this.onFeedSettled(topic, partition, reason, resumeFrom);
      },
      onError: (err) =>
        this.logger.error({ topic, partition, err: (err as Error).message }, 'delivery failed unexpectedly'),
    });
    this.feeds.set(k, { topic, partition, feed });
    return feed;
  }

  private onFeedSettled(
    topic: string,
    partition: number,
    reason: Halt,
    resumeFrom: string | undefined,
  ): void {
    if (this.lifetime.signal.aborted) return;
    // Fetch again from the first record that is not final. Until the next fetch applies the seek,
    // kafkajs marks the partition's batches stale: none fetched from beyond the dropped records is
    // taken. (A seek made while the group rejoins is kept by kafkajs and applied after the rejoin.)
    if (resumeFrom !== undefined) this.seek(topic, partition, resumeFrom);
    const { config } = this.options;
    if (reason === 'app-down') this.appDownStreak += 1;
    this.member.pauseAfterHalt(topic, partition, reason, config.retry, this.appDownStreak);
  }

  private seek(topic: string, partition: number, offset: string): void {
    try {
      this.consumer.seek({ topic, partition, offset });
    } catch (err) {
      this.logger.warn({ topic, partition, offset, err: (err as Error).message }, 'seek failed');
    }
  }

  /** Halts every feed; `fillGaps` on drain (see PartitionFeed.halt). */
  private haltFeeds(fillGaps = false): void {
    for (const { feed } of this.feeds.values()) feed.halt('stopped', fillGaps);
  }

  /**
   * The member may lose its partitions: halt every feed, let the deliveries in flight finish (within
   * the delivery timeout), commit what is final (within a bound).
   */
  private quiesce(): Promise<void> {
    this.quiescing ??= (async () => {
      this.haltFeeds();
      const settled = Promise.all([...this.feeds.values()].map(({ feed }) => feed.settled()));
      await within(settled, this.options.config.timeoutMs + 1_000);
      await within(this.committer.flush(true), REBALANCE_COMMIT_WAIT_MS);
    })().finally(() => {
      this.quiescing = undefined;
    });
    return this.quiescing;
  }

  /** A heartbeat from inside a handler; when membership is lost, quiesce before kafkajs rejoins. */
  private async beat(payload: EachBatchPayload): Promise<void> {
    try {
      await payload.heartbeat();
    } catch (err) {
      if (membershipLost(err)) {
        this.logger.info({ reason: (err as Error).message }, 'group rebalancing: committing before rejoin');
        await this.quiesce();
      }
      throw err;
    }
  }

  /** Waits for `promise`, heartbeating every second (kafkajs only heartbeats when asked). */
  private async whileBeating(payload: EachBatchPayload, promise: Promise<void>): Promise<void> {
    let done = false;
    const settled = promise.then(() => {
      done = true;
    });
    while (!done) {
      await within(settled, HEARTBEAT_INTERVAL_MS);
      if (!done) await this.beat(payload);
    }
  }

  /** Delivers one record until its outcome is final, or the partition has to stop. */
  private async deliverRecord(record: ConsumedRecord, signal: AbortSignal): Promise<RecordResult> {
    const { config, tracer } = this.options;
    const { span, headers } = startRecordSpan(tracer, record, {
      group: config.group,
      subscription: this.name,
    });
    const body = cloudEventBytes(record, recordTraceHeaders(record));
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
    records: readonly ConsumedRecord[],
    signal: AbortSignal,
    markFinal: (offsets: readonly string[]) => void,
  ): Promise<RecordResult> {
    const { config, tracer } = this.options;
    const { span, headers } = startBatchSpan(tracer, records, {
      group: config.group,
      subscription: this.name,
    });
    const prepared = this.preparedBatches.get(records[0]);
    this.preparedBatches.delete(records[0]);
    // A lane's records are taken in order: the same first record and count are the same records.
    const batch =
      prepared?.size === records.length ? prepared.batch : CloudEventBatch.of(records, recordTraceHeaders);
    /** Indices into `records` of the events still to deliver. */
    let pending = records.map((_, index) => index);
    try {
      for (let attempt = 1; ; attempt++) {
        const result = await this.attempt(batch.subset(pending), CLOUDEVENT_BATCH_CONTENT_TYPE, headers);
        if (result.kind === 'app-down') return 'app-down';
        this.appDownStreak = 0;
        const outcomes: Outcome[] =
          result.kind === 'answer'
            ? batchOutcomes(result, pending.length, (k) => eventId(records[pending[k]]))
            : pending.map(() => 'retry');
        const status = result.kind === 'answer' ? result.status : 'error';
        const done: string[] = [];
        const retry: number[] = [];
        const poison: number[] = [];
        let succeeded = 0;
        for (let k = 0; k < pending.length; k++) {
          const outcome = outcomes[k];
          if (outcome === 'success' || outcome === 'drop') {
            if (outcome === 'success') succeeded += 1;
            else this.count('dropped');
            done.push(records[pending[k]].message.offset);
          } else if (outcome === 'retry') retry.push(pending[k]);
          else poison.push(pending[k]);
        }
        this.count('success', succeeded);
        markFinal(done);
        const exhausted = retry.length > 0 && attempt >= config.retry.maxAttempts;
        const failed = exhausted ? [...poison, ...retry].sort((a, b) => a - b) : poison;
        if (failed.length > 0) {
          const verdict = await this.onPoison(
            failed.map((index) => records[index]),
            {
              reason: exhausted && poison.length === 0 ? 'retries-exhausted' : 'poison',
              status,
              attempts: attempt,
            },
            signal,
          );
          if (verdict !== 'final') return verdict;
          markFinal(failed.map((index) => records[index].message.offset));
        }
        if (exhausted || retry.length === 0) return 'final';
        pending = retry;
        this.count('retry', retry.length);
        if (!(await sleep(this.retryWait(attempt, result), signal))) return 'stopped';
      }
    } finally {
      span.end();
    }
  }

  private async attempt(
    body: Buffer,
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
        this.count('dropped', records.length);
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

  private count(result: 'success' | 'retry' | 'dead_letter' | 'dropped', n = 1): void {
    if (n > 0) this.counters[result].inc(n);
  }

  private updatePausedGauge(): void {
    this.options.metrics.subscriptionPausedPartitions.set(
      { subscription: this.name },
      this.member.pausedCount,
    );
  }
}

/**
 * The consumer-group member lifecycle shared by push subscriptions and stream processors: event
 * wiring (GROUP_JOIN / CRASH / STOP), connect-subscribe-run with retries, readiness, the current
 * assignment, pausing partitions with a resume timer, the lag gauge from committed offsets, tracking
 * of running batch handlers and leaving the group. Each owner keeps its own batch handling and adds
 * its behaviour through the hooks (composition: the owner holds one `GroupMember`).
 */
import type { Admin, Consumer, EachBatchPayload } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { backoffCap, sleep, type BackoffPolicy } from './push/backoff.js';

const CONNECT_BACKOFF = { initialBackoffMs: 250, maxBackoffMs: 5_000 };

export const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export interface GroupMemberOptions {
  readonly consumer: Consumer;
  readonly admin: Admin;
  readonly group: string;
  /** What the member is in log messages: `subscription`, `processor`. */
  readonly kind: string;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Aborted by the owner on drain/stop: connect retries end, no partition is paused any more. */
  readonly lifetime: AbortSignal;
  readonly topics: () => (string | RegExp)[];
  readonly fromBeginning: boolean;
  readonly maxConcurrency: number;
  readonly lagIntervalMs?: number | undefined;
  /** The batch handler; the member tracks it until it settles. */
  readonly eachBatch: (payload: EachBatchPayload) => Promise<void>;
  /** After subscribing, before the consumer runs. */
  readonly beforeRun?: () => void;
  /** On a consumer crash, before the member notes it. */
  readonly onCrash?: () => void;
  /** On GROUP_JOIN, once the new assignment is known and before revoked partitions are released. */
  readonly onAssigned?: () => void;
  /** On GROUP_JOIN, after revoked partitions are released, before the join is logged. */
  readonly onJoined?: () => void;
  /** Whenever the set of paused partitions may have changed. */
  readonly onPausedChange?: () => void;
  /** While leaving the group, after the consumer and admin have disconnected. */
  readonly onDisconnect?: () => Promise<void> | void;
}

export class GroupMember {
  readonly assignment = new Map<string, { topic: string; partition: number }>();
  private readonly resumeTimers = new Map<string, NodeJS.Timeout>();
  private readonly activeBatches = new Set<Promise<unknown>>();
  private joined = false;
  private crashedWith: string | undefined;
  private connecting: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: GroupMemberOptions) {
    const { consumer, kind } = options;
    const { events } = consumer;
    consumer.on(events.GROUP_JOIN, ({ payload }) => this.onJoin(payload.memberAssignment));
    consumer.on(events.CRASH, ({ payload }) => {
      options.onCrash?.();
      this.crashedWith = payload.error.message;
      if (!payload.restart) this.joined = false;
      this.options.logger.error(
        { err: payload.error.message, restart: payload.restart },
        `${kind} consumer crashed`,
      );
    });
    consumer.on(events.STOP, () => {
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
    return this.crashedWith
      ? `consumer crashed: ${this.crashedWith}`
      : 'not joined to its consumer group yet';
  }

  get crashed(): string | undefined {
    return this.crashedWith;
  }

  /** `topic\0partition` keys of the partitions paused with a resume timer. */
  pausedKeys(): string[] {
    return [...this.resumeTimers.keys()];
  }

  get pausedCount(): number {
    return this.resumeTimers.size;
  }

  /** Drain: no resume any more, every assigned partition paused. */
  pauseForDrain(): void {
    this.clearResumeTimers();
    this.resumeTimers.clear();
    this.pauseAll();
  }

  clearResumeTimers(): void {
    for (const timer of this.resumeTimers.values()) clearTimeout(timer);
  }

  /** Resolves when connecting has ended and the running batch handlers have settled. */
  async settled(): Promise<void> {
    await this.connecting;
    await Promise.allSettled([...this.activeBatches]);
  }

  /** Leaves the group (once). */
  async disconnect(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.lagTimer);
    await Promise.allSettled([this.options.consumer.disconnect(), this.options.admin.disconnect()]);
    await this.options.onDisconnect?.();
    this.joined = false;
  }

  pausePartition(topic: string, partition: number, delayMs: number, reason: string): void {
    const { consumer, lifetime, logger, onPausedChange } = this.options;
    if (lifetime.aborted) return;
    const k = tpKey(topic, partition);
    consumer.pause([{ topic, partitions: [partition] }]);
    clearTimeout(this.resumeTimers.get(k));
    logger.warn({ topic, partition, resumeInMs: delayMs, reason }, 'partition paused');
    const timer = setTimeout(() => {
      this.resumeTimers.delete(k);
      onPausedChange?.();
      if (lifetime.aborted) return;
      consumer.resume([{ topic, partitions: [partition] }]);
    }, delayMs);
    timer.unref();
    this.resumeTimers.set(k, timer);
    onPausedChange?.();
  }

  /** Pauses a partition for a growing backoff with jitter (from half the cap to the cap); `streak` counts from 1. */
  pauseWithBackoff(
    topic: string,
    partition: number,
    retry: BackoffPolicy,
    streak: number,
    reason: string,
  ): void {
    const cap = backoffCap(retry, streak - 1);
    this.pausePartition(
      topic,
      partition,
      Math.max(1, Math.round(cap / 2 + Math.random() * (cap / 2))),
      reason,
    );
  }

  /**
   * Pauses a partition whose run halted: the app down, with a growing backoff (`appDownStreak`
   * counts from 1); a poison record blocking it, for `retry.maxBackoffMs`; otherwise not at all.
   */
  pauseAfterHalt(
    topic: string,
    partition: number,
    halt: string | undefined,
    retry: BackoffPolicy,
    appDownStreak: number,
  ): void {
    if (halt === 'app-down') {
      this.pauseWithBackoff(topic, partition, retry, appDownStreak, 'app down');
    } else if (halt === 'blocked') {
      this.pausePartition(topic, partition, retry.maxBackoffMs, 'blocked on a poison record');
    }
  }

  private pauseAll(): void {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of this.assignment.values()) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    if (byTopic.size > 0) {
      this.options.consumer.pause([...byTopic].map(([topic, partitions]) => ({ topic, partitions })));
    }
  }

  private trackBatch(payload: EachBatchPayload): Promise<void> {
    const work = this.options.eachBatch(payload);
    this.activeBatches.add(work);
    void work.then(
      () => this.activeBatches.delete(work),
      () => this.activeBatches.delete(work),
    );
    return work;
  }

  private async connectUntilRunning(): Promise<void> {
    const { consumer, admin, lifetime, logger, kind } = this.options;
    for (let attempt = 0; !lifetime.aborted; attempt++) {
      try {
        await consumer.connect();
        await admin.connect();
        await consumer.subscribe({
          topics: this.options.topics(),
          fromBeginning: this.options.fromBeginning,
        });
        this.options.beforeRun?.();
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: this.options.maxConcurrency,
          eachBatch: (payload) => this.trackBatch(payload),
        });
        return;
      } catch (err) {
        this.crashedWith = (err as Error).message;
        logger.warn({ err: this.crashedWith, attempt }, `${kind} cannot start consuming yet`);
        await sleep(backoffCap(CONNECT_BACKOFF, attempt), lifetime);
      }
    }
  }

  private onJoin(memberAssignment: Record<string, number[]>): void {
    const { consumer, group, metrics, logger, kind } = this.options;
    this.joined = true;
    this.crashedWith = undefined;
    const before = [...this.assignment.values()];
    this.assignment.clear();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const partition of partitions) this.assignment.set(tpKey(topic, partition), { topic, partition });
    }
    this.options.onAssigned?.();
    for (const { topic, partition } of before) {
      if (this.assignment.has(tpKey(topic, partition))) continue;
      metrics.consumerLag.remove({ group, topic, partition: String(partition) });
      const timer = this.resumeTimers.get(tpKey(topic, partition));
      if (timer) {
        clearTimeout(timer);
        this.resumeTimers.delete(tpKey(topic, partition));
        consumer.resume([{ topic, partitions: [partition] }]);
      }
    }
    this.options.onPausedChange?.();
    this.options.onJoined?.();
    logger.info({ assignment: memberAssignment }, `${kind} joined its group`);
  }

  /** Lag from the committed offsets (end offset minus committed), so it keeps growing while paused. */
  private async updateLag(): Promise<void> {
    if (!this.joined || this.stopped || this.assignment.size === 0) return;
    const { admin, group, metrics } = this.options;
    const topics = [...new Set([...this.assignment.values()].map((tp) => tp.topic))];
    try {
      const committed = await admin.fetchOffsets({ groupId: group, topics });
      for (const topic of topics) {
        const ends = await admin.fetchTopicOffsets(topic);
        const committedByPartition = new Map(
          committed.find((entry) => entry.topic === topic)?.partitions.map((p) => [p.partition, p.offset]) ??
            [],
        );
        for (const end of ends) {
          if (!this.assignment.has(tpKey(topic, end.partition))) continue;
          const at = committedByPartition.get(end.partition);
          const from = at === undefined || Number(at) < 0 ? Number(end.low) : Number(at);
          metrics.consumerLag.set(
            { group, topic, partition: String(end.partition) },
            Math.max(0, Number(end.high) - from),
          );
        }
      }
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, 'consumer lag not updated');
    }
  }
}

/**
 * Delivery of one batch to the backend with the light-mesh reactive consumer contract (see
 * codec.ts), until the batch is final: committed (failed records dead-lettered first) or handed
 * back to the caller as `app-down`, `blocked` or `stopped`.
 *
 * Whole-batch retries (error status, malformed answer, rollback) wait with the subscription's
 * full-jitter backoff and log the problem; after `retry.maxAttempts` the batch is dead-lettered
 * (or, without dead letters, blocks its partition). Before the first batch, and after the app was
 * down, the backend's health path must answer 2xx. Used by push subscriptions in `lightmesh` mode
 * and by dead-letter replay.
 */
import type { Producer } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';
import { backoffCap, fullJitterBackoff, sleep, type BackoffPolicy } from '../consumer/push/backoff.js';
import type { AppClient, AttemptResult } from '../consumer/push/delivery.js';
import type { AuditWriter } from './audit.js';
import {
  CORRELATION_HEADER,
  TRACEABILITY_HEADER,
  deadLetterTopicOf,
  encodeBatch,
  findHeader,
  headerStrings,
  interpretAnswer,
  lightmeshDeadLetter,
  toLightmeshRecord,
  type LightmeshDataFormat,
  type LightmeshFailure,
  type LightmeshSourceRecord,
} from './codec.js';

export interface LightmeshSettings {
  readonly keyFormat: LightmeshDataFormat;
  readonly valueFormat: LightmeshDataFormat;
  readonly batchRollbackThreshold: number;
  readonly deadLetterEnabled: boolean;
  readonly deadLetterTopicExt: string;
  readonly healthPath: string;
}

export interface LightmeshDeliveryOptions {
  readonly settings: LightmeshSettings;
  readonly app: AppClient;
  /** The app's base URL (`ingress.target`): the health check goes to `<target><healthPath>`. */
  readonly target: string;
  /** The records path on the app (already joined onto the target's path). */
  readonly path: string;
  readonly timeoutMs: number;
  readonly retry: BackoffPolicy & { readonly maxAttempts: number };
  readonly deadLetterProducer: () => Promise<Producer>;
  readonly audit?: AuditWriter | undefined;
  readonly logger: Logger;
  /** Counts per outcome, for the subscription's delivery metrics. */
  readonly count?: (
    result: 'success' | 'retry' | 'dead_letter' | 'dropped',
    n: number,
    /** The source topic (dead letters). */
    topic?: string,
  ) => void;
}

export type LightmeshBatchResult = 'final' | 'app-down' | 'blocked' | 'stopped';

export interface DeliverOptions {
  /** Trace headers of the delivery request. */
  readonly headers?: Record<string, string>;
  /**
   * Dead-letter replay with `lastretry=true`: records that fail again are logged and committed,
   * not dead-lettered again (and retries stop after the first answer).
   */
  readonly lastRetry?: boolean;
}

export interface LightmeshBatchReport {
  readonly result: LightmeshBatchResult;
  /** Records answered `processed: true` on the final answer. */
  readonly processed: number;
  /** Records that failed: dead-lettered, or (last retry) only logged. */
  readonly failed: number;
}

export class LightmeshDelivery {
  private healthy: boolean;
  private healthWait: Promise<boolean> | undefined;
  /** Deliveries waiting for the health check. */
  private waiters = 0;

  constructor(private readonly options: LightmeshDeliveryOptions) {
    this.healthy = options.settings.healthPath === '';
  }

  /** Delivers `records` (one partition's, in order) until the batch is final. */
  async deliver(
    records: readonly LightmeshSourceRecord[],
    signal: AbortSignal,
    deliverOptions: DeliverOptions = {},
  ): Promise<LightmeshBatchReport> {
    const { settings, retry, logger } = this.options;
    const report = (result: LightmeshBatchResult, processed = 0, failed = 0): LightmeshBatchReport => ({
      result,
      processed,
      failed,
    });
    if (records.length === 0) return report('final');
    if (!(await this.waitUntilHealthy(signal))) return report('stopped');
    const body = encodeBatch(records, settings);
    const first = records[0];
    const where = {
      topic: first.topic,
      partition: first.partition,
      offsets: `${first.message.offset}..${records.at(-1)!.message.offset}`,
    };
    for (let attempt = 1; ; attempt++) {
      const result = await this.post(body, deliverOptions.headers ?? {});
      if (result.kind === 'app-down') {
        this.healthy = settings.healthPath === '';
        return report('app-down');
      }
      const verdict =
        result.kind === 'answer'
          ? interpretAnswer(result, records.length, settings.batchRollbackThreshold)
          : ({ kind: 'retry', reason: 'status', problem: result.error, failures: [] } as const);
      if (verdict.kind === 'commit') {
        const written = await this.fail(records, verdict.failures, signal, deliverOptions.lastRetry ?? false);
        if (!written) return report('stopped');
        this.options.count?.('success', records.length - verdict.failures.length);
        await this.auditBatch(records, verdict.failures);
        return report('final', records.length - verdict.failures.length, verdict.failures.length);
      }
      const exhausted = attempt >= retry.maxAttempts || deliverOptions.lastRetry === true;
      logger.warn(
        { ...where, attempt, reason: verdict.reason, problem: verdict.problem, exhausted },
        `light-mesh batch not accepted: ${verdict.problem}; ${exhausted ? 'no attempts left' : 'the whole batch is redelivered'}`,
      );
      if (exhausted) {
        if (!settings.deadLetterEnabled && deliverOptions.lastRetry !== true) return report('blocked');
        const byIndex = new Map(verdict.failures.map((failure) => [failure.index, failure]));
        const failures: LightmeshFailure[] = records.map(
          (_record, index) =>
            byIndex.get(index) ?? {
              index,
              stacktrace: `batch not accepted after ${attempt} attempt(s): ${verdict.problem}`,
              correlationId: undefined,
              traceabilityId: undefined,
            },
        );
        const written = await this.fail(records, failures, signal, deliverOptions.lastRetry ?? false);
        if (!written) return report('stopped');
        await this.auditBatch(records, failures);
        return report('final', 0, records.length);
      }
      this.options.count?.('retry', records.length);
      const asked = result.kind === 'answer' ? result.retryAfterMs : undefined;
      const jittered = fullJitterBackoff(retry, attempt - 1);
      const wait = asked === undefined ? jittered : Math.min(retry.maxBackoffMs, Math.max(jittered, asked));
      if (!(await sleep(wait, signal))) return report('stopped');
    }
  }

  private post(body: string, trace: Record<string, string>): Promise<AttemptResult> {
    return this.options.app.post(
      this.options.path,
      body,
      { 'content-type': 'application/json', ...trace },
      this.options.timeoutMs,
    );
  }

  /**
   * Dead-letters the failed records (retrying the write until it succeeds or `signal` aborts); on a
   * last retry, or with dead letters off, only logs them. False when stopped first.
   */
  private async fail(
    records: readonly LightmeshSourceRecord[],
    failures: readonly LightmeshFailure[],
    signal: AbortSignal,
    lastRetry: boolean,
  ): Promise<boolean> {
    if (failures.length === 0) return true;
    const { settings, logger, retry } = this.options;
    const ids = failures.map(
      ({ index }) => `${records[index].topic}-${records[index].partition}-${records[index].message.offset}`,
    );
    if (lastRetry || !settings.deadLetterEnabled) {
      logger.warn(
        { ids, stacktraces: failures.map((f) => f.stacktrace) },
        lastRetry
          ? 'light-mesh dead letters failed their last retry; not dead-lettered again'
          : 'light-mesh records not processed; dead letters are off (deadLetterEnabled: false)',
      );
      this.options.count?.('dropped', failures.length);
      return true;
    }
    const byTopic = new Map<string, ReturnType<typeof lightmeshDeadLetter>[]>();
    for (const failure of failures) {
      const record = records[failure.index];
      const topic = deadLetterTopicOf(record.topic, settings.deadLetterTopicExt);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), lightmeshDeadLetter(record, failure)]);
    }
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) return false;
      try {
        const producer = await this.options.deadLetterProducer();
        await producer.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
        break;
      } catch (err) {
        // The source offsets stay uncommitted until the dead letters are written.
        logger.error(
          { ids, err: (err as Error).message, attempt },
          'light-mesh dead-letter write failed; retrying',
        );
        if (!(await sleep(fullJitterBackoff(retry, attempt), signal))) return false;
      }
    }
    logger.warn(
      { ids, topics: [...byTopic.keys()] },
      'light-mesh record(s) written to the dead-letter topic',
    );
    this.options.count?.('dead_letter', failures.length, records[0].topic);
    return true;
  }

  private async auditBatch(
    records: readonly LightmeshSourceRecord[],
    failures: readonly LightmeshFailure[],
  ): Promise<void> {
    const { audit, settings } = this.options;
    if (!audit?.enabled) return;
    const failed = new Map(failures.map((failure) => [failure.index, failure]));
    await audit.write(
      records.map((record, index) => {
        const headers = headerStrings(record.message.headers);
        const failure = failed.get(index);
        return {
          auditType: 'REACTIVE_CONSUMER' as const,
          topic: record.topic,
          partition: record.partition,
          offset: Number(record.message.offset),
          correlationId: failure?.correlationId ?? findHeader(headers, CORRELATION_HEADER) ?? null,
          traceabilityId: failure?.traceabilityId ?? findHeader(headers, TRACEABILITY_HEADER) ?? null,
          key: toLightmeshRecord(record, settings).key,
          auditStatus: failure ? ('FAILURE' as const) : ('SUCCESS' as const),
          stacktrace: failure?.stacktrace ?? null,
        };
      }),
    );
  }

  /**
   * Resolves true once the backend's health path answered 2xx; false when `signal` aborts first.
   * Concurrent callers (partitions) share one poll, which ends when none of them waits any more.
   */
  private async waitUntilHealthy(signal: AbortSignal): Promise<boolean> {
    this.waiters += 1;
    try {
      while (!this.healthy) {
        if (signal.aborted) return false;
        this.healthWait ??= this.pollHealth().finally(() => {
          this.healthWait = undefined;
        });
        let onAbort!: () => void;
        const aborted = new Promise<boolean>((resolve) => {
          onAbort = () => resolve(false);
          signal.addEventListener('abort', onAbort, { once: true });
        });
        await Promise.race([this.healthWait, aborted]);
        signal.removeEventListener('abort', onAbort);
      }
      return !signal.aborted;
    } finally {
      this.waiters -= 1;
    }
  }

  private async pollHealth(): Promise<boolean> {
    const { settings, target, retry, logger, timeoutMs } = this.options;
    const url = `${target.replace(/\/+$/, '')}${settings.healthPath}`;
    for (let attempt = 0; this.waiters > 0; attempt++) {
      let problem: string;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        await response.body?.cancel();
        if (response.ok) {
          this.healthy = true;
          if (attempt > 0) logger.info({ url }, 'backend healthy; light-mesh delivery starts');
          return true;
        }
        problem = `HTTP ${response.status}`;
      } catch (err) {
        problem = (err as Error).message;
      }
      if (attempt === 0)
        logger.warn({ url, problem }, 'waiting for the backend to be healthy before delivering');
      await sleep(backoffCap(retry, attempt));
    }
    return false;
  }
}

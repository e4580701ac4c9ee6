/**
 * light-mesh dead-letter endpoints over the pull consumer registry and the produce service:
 *
 * - `GET /consumers/deadLetter/reactive?group=&topic=&timeout=&lastretry=`: reads `<topic><ext>`
 *   and delivers its records to the backend with the reactive contract (LightmeshDelivery); with
 *   `lastretry=true` records that fail again are logged, not dead-lettered again. Commits what was
 *   delivered. Answers `{group, instance, topics, records, description}`.
 * - `GET /consumers/deadLetter/active?group=&topic=&timeout=`: answers the dead letters (light-mesh
 *   record shape) and commits them.
 * - `POST /consumers/deadLetter/active`: the caller's `[{record, processed, stacktrace,
 *   correlationId, traceabilityId}]`; records not processed are written to `<record.topic><ext>`.
 *
 * The dead-letter topic is read by the consumer group `<group><ext>`, never `<group>` itself: a
 * member of the subscription's own group subscribing to another topic would make kafkajs spread
 * the subscription's partitions over it.
 */
import { context as otelContext } from '@opentelemetry/api';
import type { Producer } from 'kafkajs';
import { MeshError } from '../../services/runtime/errors.js';
import type { Logger } from '../../services/runtime/logging.js';
import type { SubscriptionConfig } from '../consumer/push/subscription.js';
import { AppClient } from '../consumer/push/delivery.js';
import type { FetchedRecord } from '../consumer/pull/records.js';
import type { PullConsumerRegistry } from '../consumer/pull/registry.js';
import type { ProduceService } from '../producer/produce-service.js';
import type { AuditWriter } from './audit.js';
import {
  CORRELATION_HEADER,
  STACKTRACE_HEADER,
  TRACEABILITY_HEADER,
  deadLetterTopicOf,
  findHeader,
  headerStrings,
  toLightmeshRecord,
  type LightmeshDataFormat,
  type LightmeshSourceRecord,
} from './codec.js';
import { toLightmeshOffsets, toRestRecords } from './produce.js';
import { LightmeshDelivery } from './reactive.js';

export interface DeadLetterDeps {
  readonly registry: PullConsumerRegistry;
  readonly produce: ProduceService;
  readonly audit: AuditWriter;
  /** The app (`ingress.target`) and the push subscriptions, whose light-mesh settings apply by group. */
  readonly backend?: {
    readonly target: string;
    readonly subscriptions: readonly SubscriptionConfig[];
    readonly producer: () => Promise<Producer>;
  };
  readonly logger: Logger;
}

const DEFAULTS = {
  keyFormat: 'json' as LightmeshDataFormat,
  valueFormat: 'json' as LightmeshDataFormat,
  batchRollbackThreshold: 30,
  deadLetterEnabled: true,
  deadLetterTopicExt: '.dlq',
  healthPath: '',
};
const MAX_POLL_BYTES = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 5_000;

function query(params: Record<string, unknown>, name: string): string | undefined {
  const value = params[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function requiredQuery(params: Record<string, unknown>, name: string): string {
  const value = query(params, name);
  if (value === undefined) {
    throw new MeshError('MESH_BAD_REQUEST', `query parameter "${name}" is required`, {
      errors: [{ in: 'query', path: `/${name}`, message: 'is required' }],
    });
  }
  if (name === 'topic' && !/^[a-zA-Z0-9._-]{1,249}$/.test(value)) {
    throw new MeshError('MESH_BAD_REQUEST', `invalid topic name "${value}"`);
  }
  return value;
}

function timeoutOf(params: Record<string, unknown>): number {
  const text = query(params, 'timeout');
  if (text === undefined) return DEFAULT_TIMEOUT_MS;
  if (!/^\d{1,7}$/.test(text)) throw new MeshError('MESH_BAD_REQUEST', 'timeout must be milliseconds');
  return Number(text);
}

function toSource(record: FetchedRecord): LightmeshSourceRecord {
  return {
    topic: record.topic,
    partition: record.partition,
    message: {
      key: record.key,
      value: record.value,
      headers: record.headers,
      offset: record.offset,
      timestamp: record.timestamp,
      attributes: 0,
    },
  };
}

export class LightmeshDeadLetters {
  constructor(private readonly deps: DeadLetterDeps) {}

  /** The light-mesh settings of the subscription with this group (defaults without one). */
  private settingsFor(group: string) {
    const subscription = this.deps.backend?.subscriptions.find(
      (s) => s.group === group && s.mode === 'lightmesh',
    );
    return {
      subscription,
      settings: subscription ? { ...DEFAULTS, ...subscription.lightmesh, healthPath: '' } : DEFAULTS,
    };
  }

  /** Reads the dead letters of `topic` for `group` until `timeoutMs` passes or no more arrive. */
  private async read<T>(
    group: string,
    dlqTopic: string,
    timeoutMs: number,
    use: (records: FetchedRecord[], instance: string) => Promise<{ commit: FetchedRecord[]; result: T }>,
  ): Promise<T> {
    const { registry } = this.deps;
    const instance = registry.create({
      group,
      format: 'binary',
      autoOffsetReset: 'earliest',
      autoCommit: false,
      fetchMinBytes: 1,
      requestTimeoutMs: Math.max(timeoutMs, 1),
      isolationLevel: 'read_uncommitted',
    });
    const name = instance.settings.name;
    try {
      return await instance.use(async () => {
        await instance.subscribe([dlqTopic], undefined);
        const deadline = Date.now() + timeoutMs;
        const records: FetchedRecord[] = [];
        while (Date.now() < deadline) {
          // The first poll waits for the group join and the first records; later ones only briefly.
          const wait = records.length === 0 ? deadline - Date.now() : Math.min(200, deadline - Date.now());
          const got = await instance.poll(Math.max(wait, 0), MAX_POLL_BYTES);
          if (got.length === 0 && records.length > 0) break;
          records.push(...got);
        }
        const { commit, result } = await use(records, name);
        const next = new Map<string, { topic: string; partition: number; offset: number }>();
        for (const record of commit) {
          next.set(`${record.topic}\0${record.partition}`, {
            topic: record.topic,
            partition: record.partition,
            offset: Number(record.offset) + 1,
          });
        }
        if (next.size > 0) await instance.commit([...next.values()]);
        return result;
      });
    } finally {
      await registry.delete(group, name).catch(() => undefined);
    }
  }

  async reactive(params: Record<string, unknown>): Promise<unknown> {
    const group = requiredQuery(params, 'group');
    const topic = requiredQuery(params, 'topic');
    const timeoutMs = timeoutOf(params);
    const lastRetry = query(params, 'lastretry') === 'true';
    const backend = this.deps.backend;
    const { subscription, settings } = this.settingsFor(group);
    if (!backend || !subscription) {
      throw new MeshError(
        'MESH_NOT_FOUND',
        `no push subscription in mode lightmesh with group ${group}: dead-letter replay delivers with its settings`,
      );
    }
    const dlqTopic = deadLetterTopicOf(topic, settings.deadLetterTopicExt);
    const app = new AppClient(backend.target, 1);
    try {
      const delivery = new LightmeshDelivery({
        settings,
        app,
        target: backend.target,
        path: app.pathFor(subscription.path),
        timeoutMs: subscription.timeoutMs,
        retry: subscription.retry,
        deadLetterProducer: backend.producer,
        audit: this.deps.audit,
        logger: this.deps.logger.child({ replay: dlqTopic, group }),
      });
      return await this.read(
        deadLetterGroup(group, settings.deadLetterTopicExt),
        dlqTopic,
        timeoutMs,
        async (records, instance) => {
          const byPartition = new Map<number, FetchedRecord[]>();
          for (const record of records) {
            byPartition.set(record.partition, [...(byPartition.get(record.partition) ?? []), record]);
          }
          const committed: FetchedRecord[] = [];
          let delivered = 0;
          let failed = 0;
          let incomplete = false;
          const controller = new AbortController();
          for (const list of byPartition.values()) {
            for (let i = 0; i < list.length; i += subscription.maxBatch) {
              const chunk = list.slice(i, i + subscription.maxBatch);
              // A replayed dead letter carries its old StackTrace; the backend sees the record as produced.
              const report = await delivery.deliver(chunk.map(toSource), controller.signal, { lastRetry });
              if (report.result !== 'final') {
                incomplete = true;
                break;
              }
              delivered += report.processed;
              failed += report.failed;
              committed.push(...chunk);
            }
          }
          return {
            commit: committed,
            result: {
              group,
              instance,
              topics: [dlqTopic],
              records: committed.length,
              description: `${committed.length} dead letter(s) of ${dlqTopic} replayed: ${delivered} processed, ${failed} failed${
                failed > 0
                  ? lastRetry
                    ? ' (logged, not dead-lettered again)'
                    : ` (dead-lettered to ${dlqTopic} again)`
                  : ''
              }${incomplete ? '; the backend was not reachable for the rest, which stays uncommitted' : ''}`,
            },
          };
        },
      );
    } finally {
      await app.close();
    }
  }

  async active(params: Record<string, unknown>): Promise<unknown> {
    const group = requiredQuery(params, 'group');
    const topic = requiredQuery(params, 'topic');
    const timeoutMs = timeoutOf(params);
    const { settings } = this.settingsFor(group);
    const formats = {
      keyFormat: formatQuery(params, 'keyFormat') ?? settings.keyFormat,
      valueFormat: formatQuery(params, 'valueFormat') ?? settings.valueFormat,
    };
    const dlqTopic = deadLetterTopicOf(topic, settings.deadLetterTopicExt);
    return this.read(
      deadLetterGroup(group, settings.deadLetterTopicExt),
      dlqTopic,
      timeoutMs,
      async (records) => {
        const sources = records.map(toSource);
        await this.deps.audit.write(
          sources.map((record) => {
            const headers = headerStrings(record.message.headers);
            return {
              auditType: 'ACTIVE_CONSUMER' as const,
              topic: record.topic,
              partition: record.partition,
              offset: Number(record.message.offset),
              correlationId: findHeader(headers, CORRELATION_HEADER) ?? null,
              traceabilityId: findHeader(headers, TRACEABILITY_HEADER) ?? null,
              key: toLightmeshRecord(record, formats).key,
              auditStatus: 'SUCCESS' as const,
              stacktrace: null,
            };
          }),
        );
        return { commit: records, result: sources.map((record) => toLightmeshRecord(record, formats)) };
      },
    );
  }

  /** The caller's failed records to their dead-letter topics; answers the dead letters' offsets. */
  async write(params: Record<string, unknown>, body: unknown): Promise<unknown> {
    if (!Array.isArray(body)) {
      throw new MeshError(
        'MESH_INVALID_RECORD',
        'the body must be an array of {record, processed, stacktrace, ...}',
      );
    }
    const group = query(params, 'group');
    const { settings } = this.settingsFor(group ?? '');
    const keyFormat = (formatQuery(params, 'keyFormat') ?? settings.keyFormat).toUpperCase();
    const valueFormat = (formatQuery(params, 'valueFormat') ?? settings.valueFormat).toUpperCase();
    const failed = (body as unknown[]).filter(
      (entry): entry is ResultEntry =>
        entry !== null && typeof entry === 'object' && (entry as ResultEntry).processed !== true,
    );
    const byTopic = new Map<string, ResultEntry[]>();
    for (const [index, entry] of failed.entries()) {
      const topic = entry.record?.topic;
      if (typeof topic !== 'string' || !/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) {
        throw new MeshError('MESH_INVALID_RECORD', `entry ${index} has no valid record.topic`);
      }
      const dlq = deadLetterTopicOf(topic, settings.deadLetterTopicExt);
      byTopic.set(dlq, [...(byTopic.get(dlq) ?? []), entry]);
    }
    const answers: { topic: string; offsets: unknown[] }[] = [];
    for (const [topic, entries] of byTopic) {
      const { records, ids } = toRestRecords(
        {
          keyFormat,
          valueFormat,
          records: entries.map((entry) => ({
            key: entry.record.key,
            value: entry.record.value,
            ...(typeof entry.record.timestamp === 'number' ? { timestamp: entry.record.timestamp } : {}),
            headers: {
              ...stringHeaders(entry.record.headers),
              [STACKTRACE_HEADER]:
                typeof entry.stacktrace === 'string' ? entry.stacktrace : 'processed: false',
            },
            ...(typeof entry.correlationId === 'string'
              ? { correlationId: entry.correlationId }
              : stringHeaders(entry.record.headers)[CORRELATION_HEADER] !== undefined
                ? { correlationId: stringHeaders(entry.record.headers)[CORRELATION_HEADER] }
                : {}),
            ...(typeof entry.traceabilityId === 'string' ? { traceabilityId: entry.traceabilityId } : {}),
          })),
        },
        { injectCallerId: false, serviceId: '', copyAuthorizationHeader: false },
        {},
      );
      const decoded = this.deps.produce.prepare({ topic, format: 'binary', records });
      const result = await this.deps.produce.produce(
        { topic, format: 'binary', records, parentContext: otelContext.active() },
        decoded,
      );
      const offsets = result.offsets.map((entry) => entry!);
      await this.deps.audit.write(
        entries.map((entry, index) => ({
          auditType: 'ACTIVE_CONSUMER' as const,
          topic: entry.record.topic,
          partition: typeof entry.record.partition === 'number' ? entry.record.partition : null,
          offset: typeof entry.record.offset === 'number' ? entry.record.offset : null,
          correlationId: ids[index].correlationId,
          traceabilityId: ids[index].traceabilityId ?? null,
          key: entry.record.key ?? null,
          auditStatus: 'FAILURE' as const,
          stacktrace: typeof entry.stacktrace === 'string' ? entry.stacktrace : null,
        })),
      );
      answers.push({ topic, offsets: toLightmeshOffsets(offsets) });
    }
    return { deadLetters: answers };
  }
}

interface ResultEntry {
  record: {
    topic: string;
    key?: unknown;
    value?: unknown;
    headers?: unknown;
    partition?: unknown;
    offset?: unknown;
    timestamp?: unknown;
  };
  processed?: unknown;
  stacktrace?: unknown;
  correlationId?: unknown;
  traceabilityId?: unknown;
}

function stringHeaders(headers: unknown): Record<string, string> {
  if (headers === null || typeof headers !== 'object') return {};
  return Object.fromEntries(
    Object.entries(headers as Record<string, unknown>)
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([name, value]) => [name, String(value)]),
  );
}

function formatQuery(params: Record<string, unknown>, name: string): LightmeshDataFormat | undefined {
  const value = query(params, name)?.toLowerCase();
  if (value === undefined) return undefined;
  if (value === 'json' || value === 'jsonschema') return 'json';
  if (value === 'string' || value === 'binary') return value;
  throw new MeshError('MESH_BAD_REQUEST', `${name} must be json, string or binary`);
}

/** The consumer group dead letters of `group` are read with. */
export function deadLetterGroup(group: string, ext: string): string {
  return `${group}${ext}`;
}

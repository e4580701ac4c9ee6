/**
 * The light-mesh reactive consumer contract as pure functions: the JSON array a batch is POSTed as,
 * what the backend's answer means for the batch, and the dead-letter record of a failed record.
 *
 * Request: `[{topic, key, value, headers, partition, offset, timestamp}]`. Answer: 2xx with one entry
 * per record, in the same order, `{record, processed, stacktrace, correlationId, traceabilityId, key,
 * timestamp}`. A status outside 2xx, an empty or unreadable body, or an array of the wrong length
 * retries the whole batch; a share of `processed: false` at or above the rollback threshold retries
 * the whole batch too; otherwise the failed records are dead-lettered and the batch is committed.
 */
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { encodeField } from '../consumer/pull/records.js';

/** How keys and values are shown to the backend (light-mesh `keyFormat` / `valueFormat`). */
export type LightmeshDataFormat = 'json' | 'string' | 'binary';

export const CORRELATION_HEADER = 'X-Correlation-Id';
export const TRACEABILITY_HEADER = 'X-Traceability-Id';
export const STACKTRACE_HEADER = 'StackTrace';

/** A consumed Kafka record (the push subscription's `ConsumedRecord`). */
export interface LightmeshSourceRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
}

/** One element of the array POSTed to the backend. */
export interface LightmeshConsumerRecord {
  readonly topic: string;
  readonly key: unknown;
  readonly value: unknown;
  readonly headers: Record<string, string>;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
}

/** One failed record of an accepted answer, by its index in the batch. */
export interface LightmeshFailure {
  readonly index: number;
  readonly stacktrace: string;
  readonly correlationId: string | undefined;
  readonly traceabilityId: string | undefined;
}

export type LightmeshVerdict =
  /** Every record processed or dead-lettered: dead-letter `failures`, then commit the batch. */
  | { readonly kind: 'commit'; readonly failures: readonly LightmeshFailure[] }
  /** Redeliver the whole batch; `problem` says why (for the log). */
  | {
      readonly kind: 'retry';
      readonly reason: 'status' | 'malformed' | 'rollback';
      readonly problem: string;
      /** Failed records of a rollback (empty for the other reasons). */
      readonly failures: readonly LightmeshFailure[];
    };

/** light-mesh names the text format `string`; otherwise the pull consumer API's encoding. */
function decodeBytes(bytes: Buffer | null, format: LightmeshDataFormat): unknown {
  return encodeField(format === 'string' ? 'text' : format, bytes);
}

/** Header values as strings (the last one when a name repeats). */
export function headerStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers ?? {})) {
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (value !== undefined) out[name] = value.toString();
  }
  return out;
}

/** A header by name, ignoring case (`x-correlation-id` and `X-Correlation-Id` are the same). */
export function findHeader(headers: Record<string, string>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

export function toLightmeshRecord(
  record: LightmeshSourceRecord,
  formats: { readonly keyFormat: LightmeshDataFormat; readonly valueFormat: LightmeshDataFormat },
): LightmeshConsumerRecord {
  const { message } = record;
  return {
    topic: record.topic,
    key: decodeBytes(message.key ?? null, formats.keyFormat),
    value: decodeBytes(message.value, formats.valueFormat),
    headers: headerStrings(message.headers),
    partition: record.partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
  };
}

/** The request body of one batch. */
export function encodeBatch(
  records: readonly LightmeshSourceRecord[],
  formats: { readonly keyFormat: LightmeshDataFormat; readonly valueFormat: LightmeshDataFormat },
): string {
  return JSON.stringify(records.map((record) => toLightmeshRecord(record, formats)));
}

function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * What the backend's answer to a batch of `size` records means. `thresholdPercent` is
 * `batchRollbackThreshold`: when at least that share of the records is `processed: false` the whole
 * batch is retried (a batch without failures is always committed).
 */
export function interpretAnswer(
  answer: { readonly status: number; readonly body: string },
  size: number,
  thresholdPercent: number,
): LightmeshVerdict {
  const retry = (reason: 'status' | 'malformed', problem: string): LightmeshVerdict => ({
    kind: 'retry',
    reason,
    problem,
    failures: [],
  });
  if (answer.status < 200 || answer.status >= 300) {
    return retry('status', `the backend answered HTTP ${answer.status}`);
  }
  if (answer.body.trim().length === 0) {
    return retry('malformed', `the backend answered HTTP ${answer.status} with an empty body`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body) as unknown;
  } catch (err) {
    return retry('malformed', `the backend's answer is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) {
    return retry('malformed', `the backend's answer is not a JSON array (one entry per record)`);
  }
  if (parsed.length !== size) {
    return retry(
      'malformed',
      `the backend's answer has ${parsed.length} entries for a batch of ${size} records`,
    );
  }
  const failures: LightmeshFailure[] = [];
  for (let index = 0; index < parsed.length; index++) {
    const entry = parsed[index] as Record<string, unknown> | null;
    if (entry === null || typeof entry !== 'object' || typeof entry.processed !== 'boolean') {
      return retry('malformed', `entry ${index} of the backend's answer has no boolean "processed"`);
    }
    if (entry.processed) continue;
    failures.push({
      index,
      stacktrace: textOf(entry.stacktrace) ?? 'processed: false (no stacktrace given)',
      correlationId: textOf(entry.correlationId),
      traceabilityId: textOf(entry.traceabilityId),
    });
  }
  if (failures.length > 0 && (failures.length * 100) / size >= thresholdPercent) {
    return {
      kind: 'retry',
      reason: 'rollback',
      problem: `${failures.length} of ${size} records not processed, at or above batchRollbackThreshold ${thresholdPercent}%`,
      failures,
    };
  }
  return { kind: 'commit', failures };
}

/**
 * The dead letter of a failed record: original key, value, timestamp and headers, plus
 * `X-Correlation-Id`, `X-Traceability-Id` (from the answer, else the record's own headers) and
 * `StackTrace`.
 */
export function lightmeshDeadLetter(
  record: LightmeshSourceRecord,
  failure: Pick<LightmeshFailure, 'stacktrace' | 'correlationId' | 'traceabilityId'>,
): Message {
  const { message } = record;
  const original = headerStrings(message.headers);
  const headers: IHeaders = {};
  const replaced = new Set(
    [CORRELATION_HEADER, TRACEABILITY_HEADER, STACKTRACE_HEADER].map((name) => name.toLowerCase()),
  );
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined && !replaced.has(name.toLowerCase())) headers[name] = value;
  }
  const correlation = failure.correlationId ?? findHeader(original, CORRELATION_HEADER);
  const traceability = failure.traceabilityId ?? findHeader(original, TRACEABILITY_HEADER);
  if (correlation !== undefined) headers[CORRELATION_HEADER] = correlation;
  if (traceability !== undefined) headers[TRACEABILITY_HEADER] = traceability;
  headers[STACKTRACE_HEADER] = failure.stacktrace;
  return { key: message.key ?? null, value: message.value, headers, timestamp: message.timestamp };
}

/** `<topic><ext>`: the dead-letter topic of a source topic. */
export function deadLetterTopicOf(topic: string, ext: string): string {
  return `${topic}${ext}`;
}

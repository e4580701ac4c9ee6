/**
 * The app's answer to a stream processor request: the records to produce.
 *
 * A 2xx answer is `{"records":[{"topic","key","value","headers"}, ...]}` (zero, one or many), or
 * 204 / `{"records":[]}` for none. Each record:
 * - `topic` (required): one of the processor's `outputTopics`, else the answer is poison;
 * - `key`: a string or null/absent (no key); `keyEncoding`: `text` (default, UTF-8) or `base64`;
 * - `value`: with `valueEncoding` `json` (default) any JSON value, written as its JSON text
 *   (`"a"` stays `"a"` with quotes); `text`: a string written as UTF-8; `base64`: a base64 string
 *   written as the decoded bytes. null/absent means no value (a tombstone);
 * - `headers`: an object of string values (UTF-8).
 * Any other field, or a field of the wrong shape, makes the answer invalid (poison): a typo must
 * not turn into silently wrong records. `{"status":"RETRY"}` and `{"status":"DROP"}` work as for push
 * subscriptions; other statuses follow push subscriptions too (408/429/5xx retry, other 4xx poison).
 */
import type { IHeaders, Message } from 'kafkajs';
import { statusOutcome, type AppAnswer } from '../consumer/push/outcome.js';

export interface OutputRecord {
  readonly topic: string;
  readonly message: Message;
}

export type PoisonReason = 'poison' | 'invalid-answer' | 'topic-not-allowed';

export type AnswerVerdict =
  | { readonly kind: 'records'; readonly records: readonly OutputRecord[] }
  | { readonly kind: 'drop' }
  | { readonly kind: 'retry' }
  | { readonly kind: 'poison'; readonly reason: PoisonReason; readonly detail: string };

const RECORD_FIELDS = new Set(['topic', 'key', 'keyEncoding', 'value', 'valueEncoding', 'headers']);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

class InvalidAnswer extends Error {
  constructor(
    readonly reason: PoisonReason,
    message: string,
  ) {
    super(message);
  }
}

function decodeBase64(text: string, at: string): Buffer {
  if (!BASE64.test(text)) throw new InvalidAnswer('invalid-answer', `${at}: not base64`);
  return Buffer.from(text, 'base64');
}

function encodeKey(record: Record<string, unknown>, at: string): Buffer | null {
  const { key, keyEncoding = 'text' } = record;
  if (keyEncoding !== 'text' && keyEncoding !== 'base64') {
    throw new InvalidAnswer('invalid-answer', `${at}/keyEncoding: must be text or base64`);
  }
  if (key === undefined || key === null) return null;
  if (typeof key !== 'string') throw new InvalidAnswer('invalid-answer', `${at}/key: must be a string`);
  return keyEncoding === 'base64' ? decodeBase64(key, `${at}/key`) : Buffer.from(key, 'utf8');
}

function encodeValue(record: Record<string, unknown>, at: string): Buffer | null {
  const { value, valueEncoding = 'json' } = record;
  if (valueEncoding !== 'json' && valueEncoding !== 'text' && valueEncoding !== 'base64') {
    throw new InvalidAnswer('invalid-answer', `${at}/valueEncoding: must be json, text or base64`);
  }
  if (value === undefined || value === null) return null;
  if (valueEncoding === 'json') return Buffer.from(JSON.stringify(value), 'utf8');
  if (typeof value !== 'string') {
    throw new InvalidAnswer('invalid-answer', `${at}/value: must be a string with ${valueEncoding} encoding`);
  }
  return valueEncoding === 'base64' ? decodeBase64(value, `${at}/value`) : Buffer.from(value, 'utf8');
}

function encodeHeaders(headers: unknown, at: string): IHeaders {
  if (headers === undefined || headers === null) return {};
  if (typeof headers !== 'object' || Array.isArray(headers)) {
    throw new InvalidAnswer('invalid-answer', `${at}/headers: must be an object of strings`);
  }
  const out: IHeaders = {};
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      throw new InvalidAnswer('invalid-answer', `${at}/headers/${name}: must be a string`);
    }
    out[name] = value;
  }
  return out;
}

function toOutput(entry: unknown, index: number, allowed: ReadonlySet<string>): OutputRecord {
  const at = `/records/${index}`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new InvalidAnswer('invalid-answer', `${at}: must be an object`);
  }
  const record = entry as Record<string, unknown>;
  for (const field of Object.keys(record)) {
    if (!RECORD_FIELDS.has(field))
      throw new InvalidAnswer('invalid-answer', `${at}: unknown field "${field}"`);
  }
  const { topic } = record;
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new InvalidAnswer('invalid-answer', `${at}/topic: must be a topic name`);
  }
  if (!allowed.has(topic)) {
    throw new InvalidAnswer('topic-not-allowed', `${at}/topic: "${topic}" is not an allowed output topic`);
  }
  return {
    topic,
    message: {
      key: encodeKey(record, at),
      value: encodeValue(record, at),
      headers: encodeHeaders(record.headers, at),
    },
  };
}

/** What an answer asks for; `allowed` is the processor's `outputTopics`. */
export function processorVerdict(answer: AppAnswer, allowed: ReadonlySet<string>): AnswerVerdict {
  const outcome = statusOutcome(answer.status);
  if (outcome === 'retry') return { kind: 'retry' };
  if (outcome !== 'success') {
    return { kind: 'poison', reason: 'poison', detail: `the app answered ${answer.status}` };
  }
  if (answer.status === 204) return { kind: 'records', records: [] };
  let body: unknown;
  try {
    body = JSON.parse(answer.body) as unknown;
  } catch {
    // Also an empty or over-long (unread) body: producing nothing for it could lose outputs.
    return { kind: 'poison', reason: 'invalid-answer', detail: 'the answer is not JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { kind: 'poison', reason: 'invalid-answer', detail: 'the answer must be a JSON object' };
  }
  const { records, status } = body as { records?: unknown; status?: unknown };
  if (records === undefined && typeof status === 'string') {
    switch (status.toUpperCase()) {
      case 'RETRY':
        return { kind: 'retry' };
      case 'DROP':
        return { kind: 'drop' };
    }
  }
  if (!Array.isArray(records)) {
    return { kind: 'poison', reason: 'invalid-answer', detail: '/records: must be an array' };
  }
  try {
    return { kind: 'records', records: records.map((entry, index) => toOutput(entry, index, allowed)) };
  } catch (err) {
    if (err instanceof InvalidAnswer) return { kind: 'poison', reason: err.reason, detail: err.message };
    throw err;
  }
}

/**
 * Dead-letter records (contract section 7): the original key, value and headers, plus `mesh.*`
 * headers saying where the record came from and why it failed.
 */
import type { IHeaders, Message } from 'kafkajs';
import type { ConsumedRecord } from './cloudevents.js';

export interface DeadLetterReason {
  /** `poison` (a 4xx answer), `retries-exhausted`, ... */
  readonly reason: string;
  /** The app's last HTTP status, or `error` when there was no answer. */
  readonly status: number | 'error';
  readonly attempts: number;
}

/** The `mesh.*` header names, in the order they are added. */
export const DEAD_LETTER_HEADERS = [
  'mesh.dlq.reason',
  'mesh.dlq.status',
  'mesh.original.topic',
  'mesh.original.partition',
  'mesh.original.offset',
  'mesh.attempts',
] as const;

export function deadLetterMessage(record: ConsumedRecord, why: DeadLetterReason): Message {
  const { message } = record;
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined && !name.startsWith('mesh.')) headers[name] = value;
  }
  const added: Record<(typeof DEAD_LETTER_HEADERS)[number], string> = {
    'mesh.dlq.reason': why.reason,
    'mesh.dlq.status': String(why.status),
    'mesh.original.topic': record.topic,
    'mesh.original.partition': String(record.partition),
    'mesh.original.offset': message.offset,
    'mesh.attempts': String(why.attempts),
  };
  Object.assign(headers, added);
  return {
    key: message.key,
    value: message.value,
    headers,
    // Keep the original timestamp so the dead letter tells when the record was produced.
    timestamp: message.timestamp,
  };
}

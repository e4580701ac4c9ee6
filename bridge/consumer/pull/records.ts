import type { IHeaders } from 'kafkajs';
import { formatOfContentType, type EmbeddedFormat } from '../../producer/records.js';

/** The media type a poll answers with, and the only `Accept` a poll of that format may send. */
export const RECORDS_CONTENT_TYPE: Readonly<Record<EmbeddedFormat, string>> = {
  json: 'application/vnd.kafka.json.v2+json',
  binary: 'application/vnd.kafka.binary.v2+json',
  text: 'application/vnd.kafka.text.v2+json',
};

/**
 * True when `accept` names exactly the instance's format type (parameters such as `charset` aside),
 * as the Strimzi bridge requires; `*\/*`, `application/json` or another format are not enough.
 */
export function acceptsFormat(accept: string | undefined, format: EmbeddedFormat): boolean {
  const base = accept?.split(';')[0]?.trim().toLowerCase();
  return base === RECORDS_CONTENT_TYPE[format] && formatOfContentType(base) === format;
}

/** A record fetched from Kafka, waiting in an instance's buffer. */
export interface FetchedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timestamp: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
  /** Unencoded key and value bytes: what `max_bytes` counts, as in the Strimzi bridge. */
  readonly bytes: number;
}

/** A record as a poll answers it: `{topic, key, value, partition, offset, timestamp, headers?}`. */
export interface ConsumerRecordBody {
  topic: string;
  key: unknown;
  value: unknown;
  partition: number;
  offset: number;
  timestamp: number;
  headers?: { key: string; value: string }[];
}

/**
 * The inverse of the produce side's decoding: json parses the bytes (a value that is not JSON is
 * answered as its text, so one bad record cannot wedge the consumer), binary is base64, text is UTF-8.
 */
export function encodeField(format: EmbeddedFormat, bytes: Buffer | null): unknown {
  if (bytes === null) return null;
  switch (format) {
    case 'binary':
      return bytes.toString('base64');
    case 'text':
      return bytes.toString('utf8');
    case 'json': {
      const text = bytes.toString('utf8');
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
    }
  }
}

/** Header values base64, one entry per value (Kafka allows a key more than once), as produce takes them. */
export function encodeHeaders(headers: IHeaders): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  for (const [key, raw] of Object.entries(headers)) {
    const values = Array.isArray(raw) ? raw : [raw];
    for (const value of values) {
      if (value === undefined) continue;
      out.push({ key, value: Buffer.from(value).toString('base64') });
    }
  }
  return out;
}

export function encodeRecord(format: EmbeddedFormat, record: FetchedRecord): ConsumerRecordBody {
  const headers = encodeHeaders(record.headers);
  return {
    topic: record.topic,
    key: encodeField(format, record.key),
    value: encodeField(format, record.value),
    partition: record.partition,
    offset: Number(record.offset),
    timestamp: Number(record.timestamp),
    ...(headers.length > 0 ? { headers } : {}),
  };
}

import type { IHeaders } from 'kafkajs';
import type { FieldError } from '../../services/runtime/errors.js';

/** The three embedded formats of the Strimzi bridge. */
export type EmbeddedFormat = 'json' | 'binary' | 'text';

const FORMAT_BY_CONTENT_TYPE: Record<string, EmbeddedFormat> = {
  'application/vnd.kafka.json.v2+json': 'json',
  'application/json': 'json',
  'application/vnd.kafka.binary.v2+json': 'binary',
  'application/vnd.kafka.text.v2+json': 'text',
};

/** The format a produce request's Content-Type names, or undefined when it names none of them. */
export function formatOfContentType(contentType: string | undefined): EmbeddedFormat | undefined {
  const base = contentType?.split(';')[0]?.trim().toLowerCase();
  return base === undefined ? undefined : FORMAT_BY_CONTENT_TYPE[base];
}

/** A record as the REST body carries it (shape already checked against the bridge's OpenAPI schema). */
export interface RestRecord {
  key?: unknown;
  value: unknown;
  partition?: number;
  timestamp?: number;
  headers?: { key: string; value: string }[];
}

/** A record ready for Kafka, and what it costs in bytes (for batching and back-pressure). */
export interface DecodedRecord {
  key: Buffer | null;
  value: Buffer | null;
  partition: number | undefined;
  timestamp: string | undefined;
  headers: IHeaders;
  /** Key, value and header bytes: what batching and back-pressure count. */
  bytes: number;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(text: unknown, path: string, errors: FieldError[]): Buffer | null {
  if (typeof text !== 'string' || !BASE64.test(text)) {
    errors.push({ in: 'body', path, message: 'must be a base64 string' });
    return null;
  }
  return Buffer.from(text, 'base64');
}

function encodeField(
  format: EmbeddedFormat,
  value: unknown,
  path: string,
  errors: FieldError[],
): Buffer | null {
  if (value === null || value === undefined) return null;
  switch (format) {
    case 'json':
      return Buffer.from(JSON.stringify(value), 'utf8');
    case 'binary':
      return decodeBase64(value, path, errors);
    case 'text':
      if (typeof value !== 'string') {
        errors.push({ in: 'body', path, message: 'must be a string (text format)' });
        return null;
      }
      return Buffer.from(value, 'utf8');
  }
}

/**
 * Turns REST records into Kafka records. Every problem of every record is collected, so the
 * client sees all of them at once; nothing is produced when there is any.
 */
export function decodeRecords(
  format: EmbeddedFormat,
  records: readonly RestRecord[],
): { records: DecodedRecord[]; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const decoded = records.map((record, index) => {
    const at = `/records/${index}`;
    const key = encodeField(format, record.key, `${at}/key`, errors);
    const value = encodeField(format, record.value, `${at}/value`, errors);
    // No prototype: header keys such as "__proto__" or "constructor" are ordinary Kafka header keys.
    const headers = Object.create(null) as IHeaders;
    let bytes = (key?.length ?? 0) + (value?.length ?? 0);
    (record.headers ?? []).forEach((header, headerIndex) => {
      const headerValue = decodeBase64(header.value, `${at}/headers/${headerIndex}/value`, errors);
      if (headerValue === null) return;
      // Kafka allows a header key more than once; kafkajs takes an array for that.
      const previous = headers[header.key];
      headers[header.key] =
        previous === undefined
          ? headerValue
          : ([...(Array.isArray(previous) ? previous : [previous]), headerValue] as Buffer[]);
      bytes += header.key.length + headerValue.length;
    });
    return {
      key,
      value,
      partition: record.partition,
      timestamp: record.timestamp === undefined ? undefined : String(record.timestamp),
      headers,
      bytes,
    };
  });
  return { records: decoded, errors };
}

/** The value a topic schema checks: JSON as sent (json format), or text/binary bytes parsed as JSON. */
export function schemaValueOf(
  format: EmbeddedFormat,
  record: RestRecord,
  decoded: DecodedRecord,
): { ok: true; value: unknown } | { ok: false } {
  if (format === 'json') return { ok: true, value: record.value };
  if (decoded.value === null) return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(decoded.value.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}

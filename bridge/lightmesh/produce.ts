/**
 * The light-mesh producer API (`POST /producers/{topic}`) translated onto the bridge's produce
 * service: its request body becomes binary-format REST records (keys and values encoded here per
 * `keyFormat` / `valueFormat`), its ids become headers, and the service's answer becomes
 * `{offsets: [{partition, offset, errorCode, error}]}`.
 */
import { randomUUID } from 'node:crypto';
import { MeshError, type FieldError } from '../../services/runtime/errors.js';
import type { OffsetEntry } from '../producer/produce-service.js';
import type { RestRecord } from '../producer/records.js';
import { CORRELATION_HEADER, TRACEABILITY_HEADER } from './codec.js';

export const CALLER_ID_HEADER = 'caller_id';
export const SUPPORTED_FORMATS = ['JSON', 'STRING', 'BINARY', 'JSONSCHEMA'] as const;
export const REGISTRY_FORMATS = ['AVRO', 'PROTOBUF'] as const;
export type LightmeshProduceFormat = (typeof SUPPORTED_FORMATS)[number];

export interface LightmeshProduceOptions {
  /** `bridge.lightmesh.injectCallerId`: add `caller_id: <serviceId>` to every record. */
  readonly injectCallerId: boolean;
  readonly serviceId: string;
  /**
   * `bridge.lightmesh.copyAuthorizationHeader`: copy the request's `Authorization` header into
   * every record (off by default: it puts credentials into Kafka).
   */
  readonly copyAuthorizationHeader: boolean;
}

export interface LightmeshProduceRequest {
  readonly keyFormat?: string;
  readonly valueFormat?: string;
  readonly records: readonly LightmeshProduceRecord[];
}

export interface LightmeshProduceRecord {
  readonly key?: unknown;
  readonly value?: unknown;
  readonly partition?: number;
  readonly traceabilityId?: string;
  readonly correlationId?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timestamp?: number;
}

/** The request's own headers that records inherit when they carry no ids themselves. */
export interface RequestContext {
  readonly correlationId?: string | undefined;
  readonly traceabilityId?: string | undefined;
  readonly authorization?: string | undefined;
}

/** What the records need for the audit: their ids, in request order. */
export interface ProducedIds {
  readonly correlationId: string;
  readonly traceabilityId: string | undefined;
  readonly key: unknown;
}

function formatOf(name: 'keyFormat' | 'valueFormat', given: string | undefined): LightmeshProduceFormat {
  const format = (given ?? 'JSON').toUpperCase();
  if ((REGISTRY_FORMATS as readonly string[]).includes(format)) {
    throw new MeshError(
      'MESH_INVALID_RECORD',
      `${name} ${format} is not supported: it needs a schema registry, which mesh-sidecar does not use; send JSON, JSONSCHEMA, STRING or BINARY`,
      { errors: [{ in: 'body', path: `/${name}`, message: 'format not supported' }] },
    );
  }
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(format)) {
    throw new MeshError('MESH_INVALID_RECORD', `unknown ${name} "${given ?? ''}"`, {
      errors: [{ in: 'body', path: `/${name}`, message: `must be one of ${SUPPORTED_FORMATS.join(', ')}` }],
    });
  }
  return format as LightmeshProduceFormat;
}

/** A key or value as base64 bytes per its format; null stays null (a tombstone value). */
function encode(
  format: LightmeshProduceFormat,
  data: unknown,
  path: string,
  errors: FieldError[],
): string | null {
  if (data === null || data === undefined) return null;
  switch (format) {
    case 'JSON':
    case 'JSONSCHEMA':
      return Buffer.from(JSON.stringify(data), 'utf8').toString('base64');
    case 'STRING':
      if (typeof data !== 'string') {
        errors.push({ in: 'body', path, message: 'must be a string (STRING format)' });
        return null;
      }
      return Buffer.from(data, 'utf8').toString('base64');
    case 'BINARY':
      if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) {
        errors.push({ in: 'body', path, message: 'must be a base64 string (BINARY format)' });
        return null;
      }
      return data;
  }
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * The light-mesh request as binary-format REST records for the produce service, and each record's
 * ids. Throws a 422 listing every problem (nothing is produced then).
 */
export function toRestRecords(
  body: LightmeshProduceRequest,
  options: LightmeshProduceOptions,
  context: RequestContext,
): { records: RestRecord[]; ids: ProducedIds[] } {
  const keyFormat = formatOf('keyFormat', body.keyFormat);
  const valueFormat = formatOf('valueFormat', body.valueFormat);
  const errors: FieldError[] = [];
  const ids: ProducedIds[] = [];
  const records = body.records.map((record, index): RestRecord => {
    const at = `/records/${index}`;
    const correlationId = record.correlationId ?? context.correlationId ?? randomUUID();
    const traceabilityId = record.traceabilityId ?? context.traceabilityId;
    ids.push({ correlationId, traceabilityId, key: record.key ?? null });
    const headers: { key: string; value: string }[] = [];
    for (const [name, value] of Object.entries(record.headers ?? {})) {
      // The ids below win over headers of the same name the record brought.
      if ([CORRELATION_HEADER, TRACEABILITY_HEADER].some((h) => h.toLowerCase() === name.toLowerCase()))
        continue;
      headers.push({ key: name, value: b64(value) });
    }
    headers.push({ key: CORRELATION_HEADER, value: b64(correlationId) });
    if (traceabilityId !== undefined) headers.push({ key: TRACEABILITY_HEADER, value: b64(traceabilityId) });
    if (options.injectCallerId) headers.push({ key: CALLER_ID_HEADER, value: b64(options.serviceId) });
    if (options.copyAuthorizationHeader && context.authorization !== undefined) {
      headers.push({ key: 'Authorization', value: b64(context.authorization) });
    }
    const key = encode(keyFormat, record.key, `${at}/key`, errors);
    const value = encode(valueFormat, record.value, `${at}/value`, errors);
    return {
      ...(key === null ? {} : { key }),
      value,
      ...(record.partition === undefined ? {} : { partition: record.partition }),
      ...(record.timestamp === undefined ? {} : { timestamp: record.timestamp }),
      headers,
    };
  });
  if (errors.length > 0) {
    throw new MeshError(
      'MESH_INVALID_RECORD',
      `${errors.length} invalid field(s) in the records; nothing was produced`,
      { errors },
    );
  }
  return { records, ids };
}

/** One entry of the light-mesh answer. */
export interface LightmeshOffset {
  readonly partition: number | null;
  readonly offset: number | null;
  readonly errorCode: number | null;
  readonly error: string | null;
}

export function toLightmeshOffsets(entries: readonly OffsetEntry[]): LightmeshOffset[] {
  return entries.map((entry) =>
    'offset' in entry
      ? { partition: entry.partition, offset: entry.offset, errorCode: null, error: null }
      : { partition: null, offset: null, errorCode: entry.error_code, error: entry.message },
  );
}

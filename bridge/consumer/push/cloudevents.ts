/**
 * Kafka records as CloudEvents 1.0 in structured mode (contract section 7): one JSON object per
 * record; a batch is a JSON array of them.
 */
import type { KafkaMessage } from 'kafkajs';

export const CLOUDEVENT_CONTENT_TYPE = 'application/cloudevents+json';
export const CLOUDEVENT_BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';
/** The `type` of every event the sidecar delivers. */
export const RECORD_EVENT_TYPE = 'dev.mesh-sidecar.kafka.record';

export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
}

export interface CloudEvent {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time?: string;
  readonly datacontenttype?: string;
  readonly data?: unknown;
  readonly data_base64?: string;
  readonly partitionkey?: string;
  readonly kafkatopic: string;
  readonly kafkapartition: number;
  /** A string: offsets are 64-bit and CloudEvents integers are 32-bit. */
  readonly kafkaoffset: string;
  /** Distributed-tracing extension: the trace context the delivery continues. */
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** `<topic>-<partition>-<offset>`: unique per record, the same for every redelivery. */
export function eventId(record: ConsumedRecord): string {
  return `${record.topic}-${record.partition}-${record.message.offset}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

const sources = new Map<string, string>();

function sourceOf(topic: string): string {
  let source = sources.get(topic);
  if (source === undefined) {
    source = `/kafka/${encodeURIComponent(topic)}`;
    if (sources.size < 10_000) sources.set(topic, source);
  }
  return source;
}

/** Records of one produce call share a timestamp: the last conversion is kept (it is not cheap). */
let lastTimestamp = '';
let lastTime: string | undefined;

function isoTime(timestamp: string): string | undefined {
  if (timestamp === lastTimestamp) return lastTime;
  const ms = Number(timestamp);
  lastTime = Number.isFinite(ms) && ms >= 0 ? new Date(ms).toISOString() : undefined;
  lastTimestamp = timestamp;
  return lastTime;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * `JSON.stringify(toCloudEvent(record, trace))`, built without parsing the value into objects and
 * serializing them again: a JSON value is checked and then copied as it is (so large integers keep
 * their digits). The delivery hot path.
 */
export function cloudEventJson(
  record: ConsumedRecord,
  trace: { traceparent?: string | undefined; tracestate?: string | undefined } = {},
): string {
  const { topic, partition, message } = record;
  const headerType = headerText(message, 'content-type');
  let json = `{"specversion":"1.0","id":${JSON.stringify(eventId(record))},"source":${JSON.stringify(sourceOf(topic))},"type":"${RECORD_EVENT_TYPE}"`;
  const time = isoTime(message.timestamp);
  if (time !== undefined) json += `,"time":"${time}"`;
  if (message.value !== null) {
    const text = decodeUtf8(message.value);
    if (text !== undefined && (!headerType || /json/i.test(headerType)) && isJson(text)) {
      json += `,"datacontenttype":${JSON.stringify(headerType ?? 'application/json')},"data":${text}`;
    } else if (text !== undefined) {
      json += `,"datacontenttype":${JSON.stringify(headerType ?? 'text/plain')},"data":${JSON.stringify(text)}`;
    } else {
      json += `,"datacontenttype":${JSON.stringify(headerType ?? 'application/octet-stream')},"data_base64":"${message.value.toString('base64')}"`;
    }
  }
  if (message.key !== null) {
    json += `,"partitionkey":${JSON.stringify(decodeUtf8(message.key) ?? message.key.toString('base64'))}`;
  }
  json += `,"kafkatopic":${JSON.stringify(topic)},"kafkapartition":${partition},"kafkaoffset":${JSON.stringify(message.offset)}`;
  if (trace.traceparent) json += `,"traceparent":${JSON.stringify(trace.traceparent)}`;
  if (trace.tracestate) json += `,"tracestate":${JSON.stringify(trace.tracestate)}`;
  return `${json}}`;
}

/**
 * The event for one record. The value becomes `data`: parsed JSON when it is JSON
 * (`application/json`), else the text when it is UTF-8 (`text/plain`), else `data_base64`
 * (`application/octet-stream`). A record without a value (a tombstone) has no data. A `content-type`
 * record header, when present, is kept as `datacontenttype`.
 */
export function toCloudEvent(
  record: ConsumedRecord,
  trace: { traceparent?: string | undefined; tracestate?: string | undefined } = {},
): CloudEvent {
  const { topic, partition, message } = record;
  const headerType = headerText(message, 'content-type');
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: eventId(record),
    source: sourceOf(topic),
    type: RECORD_EVENT_TYPE,
  };
  const time = isoTime(message.timestamp);
  if (time !== undefined) event.time = time;
  if (message.value !== null) {
    const text = decodeUtf8(message.value);
    let json: { value: unknown } | undefined;
    if (text !== undefined && (!headerType || /json/i.test(headerType))) {
      try {
        json = { value: JSON.parse(text) as unknown };
      } catch {
        json = undefined;
      }
    }
    if (json) {
      event.datacontenttype = headerType ?? 'application/json';
      event.data = json.value;
    } else if (text !== undefined) {
      event.datacontenttype = headerType ?? 'text/plain';
      event.data = text;
    } else {
      event.datacontenttype = headerType ?? 'application/octet-stream';
      event.data_base64 = message.value.toString('base64');
    }
  }
  if (message.key !== null) {
    event.partitionkey = decodeUtf8(message.key) ?? message.key.toString('base64');
  }
  event.kafkatopic = topic;
  event.kafkapartition = partition;
  event.kafkaoffset = message.offset;
  if (trace.traceparent) event.traceparent = trace.traceparent;
  if (trace.tracestate) event.tracestate = trace.tracestate;
  return event as unknown as CloudEvent;
}

/** A record header as text (the last value when repeated), or undefined. */
export function headerText(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  const last = Array.isArray(value) ? value.at(-1) : value;
  if (last === undefined || last === null) return undefined;
  return typeof last === 'string' ? last : last.toString('utf8');
}

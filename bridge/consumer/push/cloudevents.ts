/**
 * Kafka records as CloudEvents 1.0 in structured mode (contract section 7): one JSON object per
 * record; a batch is a JSON array of them.
 */
import { isUtf8 } from 'node:buffer';
import type { KafkaMessage } from 'kafkajs';
import { isJsonBytes } from './json-bytes.js';

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
 * `,"datacontenttype":…,"data":…` (or `data_base64`) of a value, from its decoded text: the
 * general path, for values that are not UTF-8, may start with a byte order mark, or are not JSON.
 */
function dataMembers(value: Buffer, headerType: string | undefined): string {
  const text = decodeUtf8(value);
  if (text !== undefined && (!headerType || /json/i.test(headerType)) && isJson(text)) {
    return `,"datacontenttype":${JSON.stringify(headerType ?? 'application/json')},"data":${text}`;
  }
  if (text !== undefined) {
    return `,"datacontenttype":${JSON.stringify(headerType ?? 'text/plain')},"data":${JSON.stringify(text)}`;
  }
  return `,"datacontenttype":${JSON.stringify(headerType ?? 'application/octet-stream')},"data_base64":"${value.toString('base64')}"`;
}

/** A key of printable ASCII without `"` and `\`: its JSON string is the bytes in quotes. */
function isPlainAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** The parts of an event that only depend on its topic and partition, UTF-8 (the last one is kept). */
interface PartitionParts {
  readonly topic: string;
  readonly partition: number;
  /** `{"specversion":"1.0","id":"<topic>-<partition>-` (the offset follows). */
  readonly idPrefix: Buffer;
  /** `","source":…,"type":…` after the offset. */
  readonly afterId: Buffer;
  /** `,"kafkatopic":…,"kafkapartition":…,"kafkaoffset":"` (the offset follows). */
  readonly offsetPrefix: Buffer;
}

let lastParts: PartitionParts | undefined;

function partsOf(topic: string, partition: number): PartitionParts {
  if (lastParts?.topic === topic && lastParts.partition === partition) return lastParts;
  // An offset is digits: the id's JSON string is the quoted prefix, the offset and a closing quote.
  const idPrefix = JSON.stringify(`${topic}-${partition}-`).slice(0, -1);
  lastParts = {
    topic,
    partition,
    idPrefix: Buffer.from(`{"specversion":"1.0","id":${idPrefix}`),
    afterId: Buffer.from(`","source":${JSON.stringify(sourceOf(topic))},"type":"${RECORD_EVENT_TYPE}"`),
    offsetPrefix: Buffer.from(
      `,"kafkatopic":${JSON.stringify(topic)},"kafkapartition":${partition},"kafkaoffset":"`,
    ),
  };
  return lastParts;
}

const TIME_MEMBER = Buffer.from(',"time":"');
const JSON_DATA_MEMBERS = Buffer.from(',"datacontenttype":"application/json","data":');
const KEY_MEMBER = Buffer.from(',"partitionkey":"');

/**
 * A growing byte buffer, reused by every serialization (copied out before anyone awaits). The
 * small pieces of an event are copied in plain loops: cheaper than a native call each.
 */
class ByteWriter {
  private buffer = Buffer.allocUnsafe(64 << 10);
  length = 0;

  reset(): void {
    this.length = 0;
  }

  /** Any text, as UTF-8. */
  text(text: string): void {
    this.reserve(text.length * 3);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /** Text known to be ASCII (digits, an ISO time). */
  ascii(text: string): void {
    this.reserve(text.length);
    const { buffer } = this;
    let at = this.length;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.length = at;
  }

  byte(byte: number): void {
    this.reserve(1);
    this.buffer[this.length++] = byte;
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    if (bytes.length > 64) {
      this.buffer.set(bytes, this.length);
      this.length += bytes.length;
      return;
    }
    const { buffer } = this;
    let at = this.length;
    for (let i = 0; i < bytes.length; i++) buffer[at++] = bytes[i];
    this.length = at;
  }

  /** A copy of what was written. */
  copy(): Buffer {
    const copy = Buffer.allocUnsafe(this.length);
    this.buffer.copy(copy, 0, 0, this.length);
    return copy;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

const writer = new ByteWriter();

type TraceHeaders = { traceparent?: string | undefined; tracestate?: string | undefined };

const QUOTE = 0x22;

/**
 * Writes `JSON.stringify(toCloudEvent(record, trace))` as UTF-8. A value that is UTF-8 JSON is
 * checked on its bytes and copied as it is (large integers keep their digits), without decoding or
 * parsing it, and a plain ASCII key is copied as well: the delivery hot path.
 */
function writeEvent(record: ConsumedRecord, trace: TraceHeaders): void {
  const { topic, partition, message } = record;
  const parts = partsOf(topic, partition);
  writer.bytes(parts.idPrefix);
  writer.ascii(message.offset);
  writer.bytes(parts.afterId);
  const time = isoTime(message.timestamp);
  if (time !== undefined) {
    writer.bytes(TIME_MEMBER);
    writer.ascii(time);
    writer.byte(QUOTE);
  }
  const { value, key } = message;
  if (value !== null) {
    const headerType = headerText(message, 'content-type');
    // 0xEF may start a byte order mark, which decoding drops: that (rare) value takes the general path.
    if (headerType === undefined && value[0] !== 0xef && isUtf8(value) && isJsonBytes(value)) {
      writer.bytes(JSON_DATA_MEMBERS);
      writer.bytes(value);
    } else {
      writer.text(dataMembers(value, headerType));
    }
  }
  if (key !== null) {
    if (isPlainAscii(key)) {
      writer.bytes(KEY_MEMBER);
      writer.bytes(key);
      writer.byte(QUOTE);
    } else {
      writer.text(`,"partitionkey":${JSON.stringify(decodeUtf8(key) ?? key.toString('base64'))}`);
    }
  }
  writer.bytes(parts.offsetPrefix);
  writer.ascii(message.offset);
  writer.byte(QUOTE);
  if (trace.traceparent) writer.text(`,"traceparent":${JSON.stringify(trace.traceparent)}`);
  if (trace.tracestate) writer.text(`,"tracestate":${JSON.stringify(trace.tracestate)}`);
  writer.byte(0x7d);
}

/** The event of one record as UTF-8 JSON: `JSON.stringify(toCloudEvent(record, trace))`. */
export function cloudEventBytes(record: ConsumedRecord, trace: TraceHeaders = {}): Buffer {
  writer.reset();
  writeEvent(record, trace);
  return writer.copy();
}

/**
 * A batch of events (a JSON array) and where each event lies in it, so that a retry of some of
 * them is cut from the same bytes.
 */
export class CloudEventBatch {
  private constructor(
    readonly body: Buffer,
    /** Event i is `body[starts[i], ends[i])`. */
    private readonly starts: readonly number[],
    private readonly ends: readonly number[],
  ) {}

  static of(
    records: readonly ConsumedRecord[],
    traceOf: (record: ConsumedRecord) => TraceHeaders,
  ): CloudEventBatch {
    writer.reset();
    const starts: number[] = [];
    const ends: number[] = [];
    writer.byte(0x5b);
    for (let i = 0; i < records.length; i++) {
      if (i > 0) writer.byte(0x2c);
      starts.push(writer.length);
      writeEvent(records[i], traceOf(records[i]));
      ends.push(writer.length);
    }
    writer.byte(0x5d);
    return new CloudEventBatch(writer.copy(), starts, ends);
  }

  /** The JSON array of the events at `indices` (ascending). */
  subset(indices: readonly number[]): Buffer {
    if (indices.length === this.starts.length) return this.body;
    const chunks: Buffer[] = [];
    for (const i of indices) {
      chunks.push(chunks.length === 0 ? OPEN : COMMA, this.body.subarray(this.starts[i], this.ends[i]));
    }
    if (chunks.length === 0) chunks.push(OPEN);
    chunks.push(CLOSE);
    return Buffer.concat(chunks);
  }
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

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

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { KafkaMessage } from 'kafkajs';
import { CloudEventBatch, cloudEventBytes, toCloudEvent } from './cloudevents.js';
import { deadLetterMessage } from './dead-letter.js';

function message(fields: Partial<KafkaMessage>): KafkaMessage {
  return {
    key: null,
    value: null,
    timestamp: '1700000000000',
    attributes: 0,
    offset: '42',
    headers: {},
    ...fields,
  } as KafkaMessage;
}

describe('push CloudEvents', () => {
  it('builds a structured event with the Kafka extensions', () => {
    const event = toCloudEvent(
      {
        topic: 'orders',
        partition: 3,
        message: message({ key: Buffer.from('k1'), value: Buffer.from('{"a":1}') }),
      },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    assert.deepEqual(event, {
      specversion: '1.0',
      id: 'orders-3-42',
      source: '/kafka/orders',
      type: 'dev.mesh-sidecar.kafka.record',
      time: '2023-11-14T22:13:20.000Z',
      datacontenttype: 'application/json',
      data: { a: 1 },
      partitionkey: 'k1',
      kafkatopic: 'orders',
      kafkapartition: 3,
      kafkaoffset: '42',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
  });

  it('uses text for UTF-8 that is not JSON and data_base64 for binary', () => {
    const text = toCloudEvent({
      topic: 't',
      partition: 0,
      message: message({ value: Buffer.from('hello') }),
    });
    assert.equal(text.data, 'hello');
    assert.equal(text.datacontenttype, 'text/plain');
    const binary = toCloudEvent({
      topic: 't',
      partition: 0,
      message: message({ value: Buffer.from([0xff, 0xfe, 0x00]) }),
    });
    assert.equal(binary.data, undefined);
    assert.equal(binary.data_base64, '//4A');
    assert.equal(binary.datacontenttype, 'application/octet-stream');
    const tombstone = toCloudEvent({ topic: 't', partition: 0, message: message({}) });
    assert.ok(!('data' in tombstone) && !('data_base64' in tombstone) && !('partitionkey' in tombstone));
  });

  it('keeps a content-type header and does not parse non-JSON types', () => {
    const event = toCloudEvent({
      topic: 't',
      partition: 0,
      message: message({
        value: Buffer.from('{"x":1}'),
        headers: { 'content-type': Buffer.from('text/csv') },
      }),
    });
    assert.equal(event.datacontenttype, 'text/csv');
    assert.equal(event.data, '{"x":1}');
  });

  it('dead-letter records keep key, value and headers and add mesh.* headers', () => {
    const original = message({
      key: Buffer.from('k'),
      value: Buffer.from('v'),
      headers: { traceparent: Buffer.from('tp'), 'mesh.attempts': Buffer.from('stale') },
    });
    const dead = deadLetterMessage(
      { topic: 'orders', partition: 2, message: original },
      { reason: 'poison', status: 400, attempts: 1 },
    );
    assert.deepEqual(dead.key, Buffer.from('k'));
    assert.deepEqual(dead.value, Buffer.from('v'));
    assert.deepEqual(dead.headers, {
      traceparent: Buffer.from('tp'),
      'mesh.dlq.reason': 'poison',
      'mesh.dlq.status': '400',
      'mesh.original.topic': 'orders',
      'mesh.original.partition': '2',
      'mesh.original.offset': '42',
      'mesh.attempts': '1',
    });
  });
  it('cloudEventBytes is the JSON of toCloudEvent for any record', () => {
    const bytes = fc.oneof(
      fc.constant(null),
      fc.json().map((text) => Buffer.from(text)),
      fc.string().map((text) => Buffer.from(text)),
      fc.uint8Array({ maxLength: 20 }).map((array) => Buffer.from(array)),
    );
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.nat(1000),
        fc.record({
          key: bytes,
          value: bytes,
          timestamp: fc.oneof(fc.constant('-1'), fc.nat().map(String), fc.constant('1700000000000')),
          offset: fc.nat().map(String),
          contentType: fc.option(fc.constantFrom('application/json', 'text/csv', 'application/vnd.x+json')),
        }),
        fc.record({
          traceparent: fc.option(fc.string(), { nil: undefined }),
          tracestate: fc.option(fc.string(), { nil: undefined }),
        }),
        (topic, partition, m, trace) => {
          const record = {
            topic,
            partition,
            message: message({
              key: m.key,
              value: m.value,
              timestamp: m.timestamp,
              offset: m.offset,
              headers: m.contentType === null ? {} : { 'content-type': Buffer.from(m.contentType) },
            }),
          };
          assert.deepEqual(
            JSON.parse(cloudEventBytes(record, trace).toString()),
            toCloudEvent(record, trace),
          );
        },
      ),
    );
  });

  it('a batch is the JSON array of the events, and a subset of it the array of those events', () => {
    const record = (offset: number, value: string | null, key: string | null) => ({
      topic: offset % 2 ? 'orders' : 'odd "topic" é',
      partition: offset % 3,
      message: message({
        key: key === null ? null : Buffer.from(key),
        value: value === null ? null : Buffer.from(value),
        timestamp: String(1_700_000_000_000 + offset),
        offset: String(offset),
        headers:
          offset === 4
            ? { traceparent: Buffer.from('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01') }
            : {},
      }),
    });
    const records = [
      record(1, '{"n":12345678901234567890}', 'k'),
      record(2, 'not json', 'ké "quoted"'),
      record(3, null, null),
      record(4, '\ufeff{"bom":true}', 'k'),
      record(5, '[1,2', '\u0001'),
    ];
    const trace = (r: (typeof records)[number]) =>
      r.message.offset === '4'
        ? { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }
        : {};
    const batch = CloudEventBatch.of(records, trace);
    const expected = records.map((r) => toCloudEvent(r, trace(r)));
    assert.deepEqual(JSON.parse(batch.body.toString()), expected);
    assert.match(
      batch.body.toString(),
      /"data":\{"n":12345678901234567890\}/,
      'JSON values are copied as they are',
    );
    assert.deepEqual(JSON.parse(batch.subset([0, 2, 4]).toString()), [expected[0], expected[2], expected[4]]);
    assert.deepEqual(JSON.parse(batch.subset([3]).toString()), [expected[3]]);
    assert.deepEqual(JSON.parse(batch.subset([]).toString()), []);
    assert.equal(batch.subset([0, 1, 2, 3, 4]), batch.body);
  });
});

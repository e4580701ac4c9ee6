import assert from 'node:assert/strict';
import { acceptsFormat, encodeHeaders, encodeRecord, type FetchedRecord } from './records.js';

const record = (
  key: string | null,
  value: Buffer | null,
  headers: FetchedRecord['headers'] = {},
): FetchedRecord => ({
  topic: 't',
  partition: 1,
  offset: '42',
  timestamp: '1700000000000',
  key: key === null ? null : Buffer.from(key),
  value,
  headers,
  bytes: 0,
});

describe('pull consumer record encoding', () => {
  it('accepts exactly the instance’s format type', () => {
    assert.ok(acceptsFormat('application/vnd.kafka.json.v2+json', 'json'));
    assert.ok(acceptsFormat('Application/Vnd.Kafka.Binary.V2+Json; charset=utf-8', 'binary'));
    assert.ok(!acceptsFormat('application/json', 'json'));
    assert.ok(!acceptsFormat('*/*', 'binary'));
    assert.ok(!acceptsFormat(undefined, 'text'));
    assert.ok(!acceptsFormat('application/vnd.kafka.json.v2+json', 'text'));
  });

  it('encodes json, binary and text records like the Strimzi bridge', () => {
    const json = encodeRecord('json', record('{"id":1}', Buffer.from('{"a":[1,2]}')));
    assert.deepEqual(json, {
      topic: 't',
      key: { id: 1 },
      value: { a: [1, 2] },
      partition: 1,
      offset: 42,
      timestamp: 1700000000000,
    });
    assert.equal(encodeRecord('json', record(null, Buffer.from('not json'))).value, 'not json');
    const binary = encodeRecord('binary', record('k', Buffer.from([0, 1, 2])));
    assert.equal(binary.key, Buffer.from('k').toString('base64'));
    assert.equal(binary.value, 'AAEC');
    const text = encodeRecord('text', record(null, null));
    assert.equal(text.key, null);
    assert.equal(text.value, null);
  });

  it('encodes every header value base64, one entry per value', () => {
    assert.deepEqual(encodeHeaders({ a: Buffer.from('x'), b: [Buffer.from('y'), 'z'] }), [
      { key: 'a', value: 'eA==' },
      { key: 'b', value: 'eQ==' },
      { key: 'b', value: 'eg==' },
    ]);
    assert.equal('headers' in encodeRecord('text', record(null, null)), false);
  });
});

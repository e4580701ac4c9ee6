import assert from 'node:assert/strict';
import { MeshError } from '../../services/runtime/errors.js';
import { toLightmeshOffsets, toRestRecords } from './produce.js';

const options = { injectCallerId: false, serviceId: 'svc', copyAuthorizationHeader: false };
const headersOf = (record: { headers?: { key: string; value: string }[] }) =>
  Object.fromEntries(
    (record.headers ?? []).map((h) => [h.key, Buffer.from(h.value, 'base64').toString('utf8')]),
  );
const bytes = (base64: unknown) => Buffer.from(String(base64), 'base64').toString('utf8');

describe('light-mesh produce translation', () => {
  it('encodes keys and values per format and turns ids into headers', () => {
    const { records, ids } = toRestRecords(
      {
        keyFormat: 'string',
        valueFormat: 'JSON',
        records: [
          {
            key: 'k1',
            value: { a: 1 },
            correlationId: 'c-1',
            traceabilityId: 't-1',
            headers: { app: 'x', 'x-correlation-id': 'ignored' },
            partition: 1,
            timestamp: 5,
          },
          { value: null },
        ],
      },
      options,
      { authorization: 'Bearer secret' },
    );
    assert.equal(bytes(records[0].key), 'k1');
    assert.equal(bytes(records[0].value), '{"a":1}');
    assert.equal(records[0].partition, 1);
    assert.equal(records[0].timestamp, 5);
    assert.deepEqual(headersOf(records[0]), {
      app: 'x',
      'X-Correlation-Id': 'c-1',
      'X-Traceability-Id': 't-1',
    });
    assert.equal(records[1].value, null);
    assert.equal(records[1].key, undefined);
    // A correlation id is generated when missing; never the Authorization header by default.
    const second = headersOf(records[1]);
    assert.match(second['X-Correlation-Id'], /^[0-9a-f-]{36}$/);
    assert.equal(second.Authorization, undefined);
    assert.deepEqual(ids[0], { correlationId: 'c-1', traceabilityId: 't-1', key: 'k1' });
    assert.equal(ids[1].correlationId, second['X-Correlation-Id']);
  });

  it('falls back to the request ids, injects the caller id and copies Authorization only when opted in', () => {
    const { records } = toRestRecords(
      { keyFormat: 'BINARY', valueFormat: 'JSONSCHEMA', records: [{ key: 'AAE=', value: [1] }] },
      { injectCallerId: true, serviceId: 'svc', copyAuthorizationHeader: true },
      { correlationId: 'req-c', traceabilityId: 'req-t', authorization: 'Bearer x' },
    );
    assert.equal(records[0].key, 'AAE=');
    assert.deepEqual(headersOf(records[0]), {
      'X-Correlation-Id': 'req-c',
      'X-Traceability-Id': 'req-t',
      caller_id: 'svc',
      Authorization: 'Bearer x',
    });
  });

  it('answers 422 for registry formats and lists every bad field', () => {
    for (const format of ['AVRO', 'protobuf']) {
      assert.throws(
        () => toRestRecords({ valueFormat: format, records: [{ value: 1 }] }, options, {}),
        (err: unknown) =>
          err instanceof MeshError &&
          err.status === 422 &&
          /needs a schema registry/.test(err.message) &&
          err.message.includes(format.toUpperCase()),
      );
    }
    assert.throws(
      () => toRestRecords({ valueFormat: 'XML', records: [{ value: 1 }] }, options, {}),
      (err: unknown) =>
        err instanceof MeshError && err.status === 422 && /unknown valueFormat/.test(err.message),
    );
    assert.throws(
      () =>
        toRestRecords(
          { keyFormat: 'STRING', valueFormat: 'BINARY', records: [{ key: 1, value: 'not base64!' }] },
          options,
          {},
        ),
      (err: unknown) =>
        err instanceof MeshError &&
        err.status === 422 &&
        JSON.stringify(err.toBridgeError()).includes('/records/0/key') &&
        JSON.stringify(err.toBridgeError()).includes('/records/0/value'),
    );
  });

  it('answers offsets in the light-mesh shape', () => {
    assert.deepEqual(
      toLightmeshOffsets([
        { partition: 0, offset: 4 },
        { error_code: 50301, message: 'not acknowledged' },
      ]),
      [
        { partition: 0, offset: 4, errorCode: null, error: null },
        { partition: null, offset: null, errorCode: 50301, error: 'not acknowledged' },
      ],
    );
  });
});

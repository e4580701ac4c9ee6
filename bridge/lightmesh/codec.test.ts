import assert from 'node:assert/strict';
import type { KafkaMessage } from 'kafkajs';
import {
  deadLetterTopicOf,
  encodeBatch,
  interpretAnswer,
  lightmeshDeadLetter,
  toLightmeshRecord,
  type LightmeshSourceRecord,
} from './codec.js';

function record(offset: number, message: Partial<KafkaMessage> = {}): LightmeshSourceRecord {
  return {
    topic: 'orders',
    partition: 2,
    message: {
      key: Buffer.from('"k"'),
      value: Buffer.from('{"n":1}'),
      timestamp: '1700000000000',
      attributes: 0,
      offset: String(offset),
      headers: {},
      ...message,
    } as KafkaMessage,
  };
}

const answers = (processed: boolean[]) =>
  JSON.stringify(
    processed.map((ok, i) => ({
      processed: ok,
      ...(ok ? {} : { stacktrace: `boom ${i}`, correlationId: `c${i}`, traceabilityId: `t${i}` }),
    })),
  );

describe('light-mesh codec', () => {
  it('encodes a record with the light-mesh fields and formats', () => {
    const r = record(7, { headers: { a: Buffer.from('1'), b: [Buffer.from('x'), Buffer.from('y')] } });
    assert.deepEqual(toLightmeshRecord(r, { keyFormat: 'json', valueFormat: 'json' }), {
      topic: 'orders',
      key: 'k',
      value: { n: 1 },
      headers: { a: '1', b: 'y' },
      partition: 2,
      offset: 7,
      timestamp: 1700000000000,
    });
    const s = toLightmeshRecord(r, { keyFormat: 'string', valueFormat: 'binary' });
    assert.equal(s.key, '"k"');
    assert.equal(s.value, Buffer.from('{"n":1}').toString('base64'));
    const tomb = toLightmeshRecord(record(1, { key: null, value: null }), {
      keyFormat: 'json',
      valueFormat: 'json',
    });
    assert.equal(tomb.key, null);
    assert.equal(tomb.value, null);
    const body = JSON.parse(
      encodeBatch([record(1), record(2)], { keyFormat: 'json', valueFormat: 'json' }),
    ) as Record<string, unknown>[];
    assert.equal(body.length, 2);
    assert.deepEqual(Object.keys(body[0]).sort(), [
      'headers',
      'key',
      'offset',
      'partition',
      'timestamp',
      'topic',
      'value',
    ]);
  });

  it('commits a batch whose failures are below the threshold, naming the failed records', () => {
    const verdict = interpretAnswer(
      { status: 200, body: answers([true, true, true, false, true, true, true, true, true, true]) },
      10,
      30,
    );
    assert.equal(verdict.kind, 'commit');
    assert.deepEqual(verdict.failures, [
      { index: 3, stacktrace: 'boom 3', correlationId: 'c3', traceabilityId: 't3' },
    ]);
    assert.deepEqual(interpretAnswer({ status: 200, body: answers([true, true]) }, 2, 30), {
      kind: 'commit',
      failures: [],
    });
    // Threshold 0 does not roll back a batch without failures.
    assert.equal(interpretAnswer({ status: 200, body: answers([true]) }, 1, 0).kind, 'commit');
  });

  it('rolls back when the share of failures reaches the threshold', () => {
    const five = interpretAnswer(
      { status: 200, body: answers([false, false, false, false, false, true, true, true, true, true]) },
      10,
      30,
    );
    assert.equal(five.kind, 'retry');
    assert.equal(five.kind === 'retry' && five.reason, 'rollback');
    assert.match(five.kind === 'retry' ? five.problem : '', /5 of 10/);
    // Exactly at the threshold rolls back; just under commits.
    assert.equal(
      interpretAnswer(
        { status: 200, body: answers([false, false, false, ...Array<boolean>(7).fill(true)]) },
        10,
        30,
      ).kind,
      'retry',
    );
    assert.equal(
      interpretAnswer({ status: 200, body: answers([false, false, ...Array<boolean>(8).fill(true)]) }, 10, 30)
        .kind,
      'commit',
    );
    // 100 never rolls back unless every record failed.
    assert.equal(interpretAnswer({ status: 200, body: answers([false, true]) }, 2, 100).kind, 'commit');
    assert.equal(interpretAnswer({ status: 200, body: answers([false, false]) }, 2, 100).kind, 'retry');
  });

  it('retries the whole batch on an error status or a malformed answer, saying why', () => {
    const cases: [number, string, 'status' | 'malformed', RegExp][] = [
      [500, answers([true]), 'status', /HTTP 500/],
      [404, '', 'status', /HTTP 404/],
      [302, '', 'status', /HTTP 302/],
      [200, '', 'malformed', /empty body/],
      [204, '  ', 'malformed', /empty body/],
      [200, 'not json', 'malformed', /not JSON/],
      [200, '{"processed":true}', 'malformed', /not a JSON array/],
      [200, answers([true, true, true]), 'malformed', /3 entries for a batch of 2/],
      [200, answers([true]).replace(']', ',{}]'), 'malformed', /entry 1 .*processed/],
      [200, '[null,{"processed":true}]', 'malformed', /entry 0/],
    ];
    for (const [status, body, reason, problem] of cases) {
      const verdict = interpretAnswer({ status, body }, 2, 30);
      assert.equal(verdict.kind, 'retry', `${status} ${body}`);
      if (verdict.kind !== 'retry') continue;
      assert.equal(verdict.reason, reason, `${status} ${body}`);
      assert.match(verdict.problem, problem);
    }
  });

  it('builds the dead letter with the original record and the light-mesh headers', () => {
    const r = record(5, {
      headers: {
        'x-correlation-id': Buffer.from('from-record'),
        'X-Traceability-Id': Buffer.from('trace-record'),
        app: Buffer.from('keep'),
      },
    });
    const fromAnswer = lightmeshDeadLetter(r, {
      stacktrace: 'java.lang.X',
      correlationId: 'c',
      traceabilityId: 't',
    });
    assert.deepEqual(fromAnswer.key, r.message.key);
    assert.deepEqual(fromAnswer.value, r.message.value);
    assert.equal(fromAnswer.timestamp, '1700000000000');
    assert.deepEqual(
      Object.fromEntries(Object.entries(fromAnswer.headers ?? {}).map(([k, v]) => [k, String(v)])),
      { app: 'keep', 'X-Correlation-Id': 'c', 'X-Traceability-Id': 't', StackTrace: 'java.lang.X' },
    );
    const fromRecord = lightmeshDeadLetter(r, {
      stacktrace: 's',
      correlationId: undefined,
      traceabilityId: undefined,
    });
    assert.equal(String(fromRecord.headers?.['X-Correlation-Id']), 'from-record');
    assert.equal(String(fromRecord.headers?.['X-Traceability-Id']), 'trace-record');
    assert.equal(deadLetterTopicOf('orders', '.dlq'), 'orders.dlq');
  });
});

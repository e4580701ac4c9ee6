import assert from 'node:assert/strict';
import { processorVerdict } from './answer.js';

const allowed = new Set(['out', 'audit']);
const ok = (body: unknown, status = 200) => ({
  status,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

describe('processor answers', () => {
  it('turns records into messages: JSON values by default, text and base64 on request', () => {
    const verdict = processorVerdict(
      ok({
        records: [
          { topic: 'out', key: 'k1', value: { n: 1 }, headers: { h: 'v' } },
          { topic: 'audit', value: 'plain', valueEncoding: 'text' },
          { topic: 'out', key: 'AAE=', keyEncoding: 'base64', value: '/w==', valueEncoding: 'base64' },
          { topic: 'out', key: null, value: 'quoted' },
          { topic: 'out', key: 'gone' },
        ],
      }),
      allowed,
    );
    assert.equal(verdict.kind, 'records');
    if (verdict.kind !== 'records') return;
    const [json, text, binary, quoted, tombstone] = verdict.records;
    assert.equal(json.topic, 'out');
    assert.equal(json.message.key?.toString(), 'k1');
    assert.equal(json.message.value?.toString(), '{"n":1}');
    assert.deepEqual(json.message.headers, { h: 'v' });
    assert.equal(text.topic, 'audit');
    assert.equal(text.message.key, null);
    assert.equal(text.message.value?.toString(), 'plain');
    assert.deepEqual(binary.message.key, Buffer.from([0, 1]));
    assert.deepEqual(binary.message.value, Buffer.from([255]));
    assert.equal(quoted.message.value?.toString(), '"quoted"');
    assert.equal(tombstone.message.value, null);
  });

  it('means zero outputs for 204 and an empty list', () => {
    assert.deepEqual(processorVerdict({ status: 204, body: '' }, allowed), { kind: 'records', records: [] });
    assert.deepEqual(processorVerdict(ok({ records: [] }), allowed), { kind: 'records', records: [] });
  });

  it('treats a topic outside the allowed list as poison', () => {
    const verdict = processorVerdict(
      ok({ records: [{ topic: 'out' }, { topic: 'secret', value: 1 }] }),
      allowed,
    );
    assert.equal(verdict.kind, 'poison');
    assert.equal(verdict.kind === 'poison' && verdict.reason, 'topic-not-allowed');
    assert.match(verdict.kind === 'poison' ? verdict.detail : '', /\/records\/1\/topic/);
  });

  it('treats malformed answers as invalid (poison), never as zero outputs', () => {
    const invalid = [
      ok(''),
      ok('not json'),
      ok([]),
      ok({ status: 'OK' }),
      ok({ records: {} }),
      ok({ records: [{ topic: 'out', vaule: 1 }] }),
      ok({ records: [{ topic: 'out', value: 1, valueEncoding: 'text' }] }),
      ok({ records: [{ topic: 'out', value: '***', valueEncoding: 'base64' }] }),
      ok({ records: [{ topic: 'out', key: 5 }] }),
      ok({ records: [{ topic: 'out', headers: { h: 1 } }] }),
      ok({ records: [{ topic: 'out', headers: ['h'] }] }),
      ok({ records: [{ value: 1 }] }),
      ok({ records: ['x'] }),
    ];
    for (const answer of invalid) {
      const verdict = processorVerdict(answer, allowed);
      assert.equal(verdict.kind === 'poison' && verdict.reason, 'invalid-answer', answer.body);
    }
  });

  it('follows push subscriptions for statuses and RETRY/DROP', () => {
    assert.deepEqual(processorVerdict(ok({ status: 'retry' }), allowed), { kind: 'retry' });
    assert.deepEqual(processorVerdict(ok({ status: 'DROP' }), allowed), { kind: 'drop' });
    for (const status of [408, 429, 500, 503]) {
      assert.deepEqual(processorVerdict({ status, body: '' }, allowed), { kind: 'retry' });
    }
    const poison = processorVerdict({ status: 422, body: '{}' }, allowed);
    assert.equal(poison.kind === 'poison' && poison.reason, 'poison');
  });
});

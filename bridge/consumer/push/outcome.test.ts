import assert from 'node:assert/strict';
import { batchOutcomes, singleOutcome } from './outcome.js';

describe('push outcomes', () => {
  it('maps single answers as the contract says', () => {
    const cases: [number, string, string][] = [
      [200, '', 'success'],
      [204, '', 'success'],
      [200, '{"status":"RETRY"}', 'retry'],
      [200, '{"status":"DROP"}', 'drop'],
      [200, '{"status":"SUCCESS"}', 'success'],
      [200, 'not json', 'success'],
      [408, '', 'retry'],
      [429, '', 'retry'],
      [500, '', 'retry'],
      [503, '{"status":"DROP"}', 'retry'],
      [400, '', 'poison'],
      [404, '', 'poison'],
      [422, '{"status":"RETRY"}', 'poison'],
    ];
    for (const [status, body, expected] of cases) {
      assert.equal(singleOutcome({ status, body }), expected, `${status} ${body}`);
    }
  });

  it('maps batch answers per event id', () => {
    const ids = ['a', 'b', 'c', 'd'];
    const body = JSON.stringify({
      statuses: [
        { id: 'a', status: 'SUCCESS' },
        { id: 'b', status: 'RETRY' },
        { id: 'c', status: 'DROP' },
        { id: 'zzz', status: 'RETRY' },
      ],
    });
    assert.deepEqual(
      batchOutcomes({ status: 200, body }, ids.length, (i) => ids[i]),
      ['success', 'retry', 'drop', 'success'],
    );
    assert.deepEqual(
      batchOutcomes({ status: 503, body }, ids.length, (i) => ids[i]),
      ['retry', 'retry', 'retry', 'retry'],
    );
    assert.deepEqual(
      batchOutcomes({ status: 400, body: '' }, 1, () => 'a'),
      ['poison'],
    );
    assert.deepEqual(
      batchOutcomes({ status: 200, body: '{"status":"RETRY"}' }, 1, () => 'a'),
      ['retry'],
    );
  });
});

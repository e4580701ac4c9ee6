import assert from 'node:assert/strict';
import { backoffCap, fullJitterBackoff, sleep } from './backoff.js';

describe('push backoff', () => {
  const policy = { initialBackoffMs: 100, maxBackoffMs: 1_000 };

  it('doubles the cap per retry up to the maximum', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 40].map((retry) => backoffCap(policy, retry)),
      [100, 200, 400, 800, 1_000, 1_000],
    );
  });

  it('waits a random share of the cap (full jitter)', () => {
    assert.equal(
      fullJitterBackoff(policy, 2, () => 0),
      0,
    );
    assert.equal(
      fullJitterBackoff(policy, 2, () => 0.5),
      200,
    );
    assert.equal(
      fullJitterBackoff(policy, 2, () => 0.999),
      399,
    );
  });

  it('sleep ends early when its signal aborts', async () => {
    const controller = new AbortController();
    const slept = sleep(60_000, controller.signal);
    controller.abort();
    assert.equal(await slept, false);
    assert.equal(await sleep(1), true);
  });
});

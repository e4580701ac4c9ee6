import assert from 'node:assert/strict';
import { IdempotencyStore } from './idempotency.js';

describe('IdempotencyStore', () => {
  it('makes a repeat wait for the first request and hand back its offsets', async () => {
    const store = new IdempotencyStore(60_000, 10);
    const first = await store.claim('k', 'body-1');
    assert.equal(first.kind, 'first');
    let repeatKind: string | undefined;
    const repeat = store.claim('k', 'body-1').then((claim) => {
      repeatKind = claim.kind;
      return claim;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(repeatKind, undefined, 'the repeat waits while the first is in flight');
    if (first.kind !== 'first') throw new Error('unreachable');
    first.complete([
      { partition: 0, offset: 4 },
      { error_code: 50301, message: 'down' },
    ]);
    const claim = await repeat;
    assert.equal(claim.kind, 'repeat');
    if (claim.kind !== 'repeat') throw new Error('unreachable');
    assert.deepEqual(claim.offsets, [
      { partition: 0, offset: 4 },
      { error_code: 50301, message: 'down' },
    ]);
  });

  it('refuses the key with a different body, and forgets keys after the window', async () => {
    let now = 1_000;
    const store = new IdempotencyStore(500, 10, () => now);
    const first = await store.claim('k', 'body-1');
    if (first.kind !== 'first') throw new Error('unreachable');
    first.complete([{ partition: 0, offset: 1 }]);
    assert.equal((await store.claim('k', 'body-2')).kind, 'mismatch');
    now += 501;
    assert.equal((await store.claim('k', 'body-2')).kind, 'first');
  });

  it('keeps at most maxEntries keys, forgetting the oldest', async () => {
    const store = new IdempotencyStore(60_000, 2);
    for (const key of ['a', 'b', 'c']) {
      const claim = await store.claim(key, 'x');
      if (claim.kind === 'first') claim.complete([{ partition: 0, offset: 0 }]);
    }
    assert.equal(store.size, 2);
    assert.equal((await store.claim('a', 'x')).kind, 'first', 'the oldest key was forgotten');
    assert.equal((await store.claim('c', 'x')).kind, 'repeat');
  });

  it('lets the next attempt start over when the first ends without results', async () => {
    const store = new IdempotencyStore(60_000, 10);
    const first = await store.claim('k', 'x');
    if (first.kind !== 'first') throw new Error('unreachable');
    first.abandon();
    assert.equal((await store.claim('k', 'x')).kind, 'first');
  });
});

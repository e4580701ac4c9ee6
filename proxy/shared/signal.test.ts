import assert from 'node:assert/strict';
import { CallSignal } from './signal.js';

describe('CallSignal', () => {
  it('runs each listener once, with the first reason kept', () => {
    const signal = new CallSignal();
    const seen: unknown[] = [];
    signal.onAbort(() => seen.push(signal.reason));
    signal.onAbort(() => seen.push('second'));
    signal.abort('first reason');
    signal.abort('later reason');
    assert.equal(signal.aborted, true);
    assert.equal(signal.reason, 'first reason');
    assert.deepEqual(seen, ['first reason', 'second']);
  });

  it('does not run a listener that was taken back', () => {
    const signal = new CallSignal();
    let runs = 0;
    const listener = () => (runs += 1);
    signal.onAbort(listener);
    signal.offAbort(listener);
    signal.abort('x');
    assert.equal(runs, 0);
  });

  it('aborts a child with its parent’s reason, and not once unlinked', () => {
    const parent = new CallSignal();
    const linked = new CallSignal(parent);
    const unlinked = new CallSignal(parent);
    const reasons: unknown[] = [];
    linked.onAbort(() => reasons.push(linked.reason));
    unlinked.unlink();
    parent.abort('gone');
    assert.deepEqual(reasons, ['gone']);
    assert.equal(unlinked.aborted, false);
  });

  it('is born aborted under an aborted parent', () => {
    const parent = new CallSignal();
    parent.abort('early');
    const child = new CallSignal(parent);
    assert.equal(child.aborted, true);
    assert.equal(child.reason, 'early');
  });
});

import assert from 'node:assert/strict';
import { CircuitBreaker } from './breaker.js';
import type { Endpoint } from './endpoints.js';
import { OutlierDetector } from './outlier.js';

describe('egress CircuitBreaker', () => {
  const policy = { maxRequests: 2, maxPendingRequests: 5, consecutiveFailures: 3, openMs: 1000 };

  it('opens after consecutive failures, half-opens for one probe, and closes on its success', () => {
    let now = 0;
    const changes: boolean[] = [];
    const breaker = new CircuitBreaker(
      policy,
      () => now,
      (open) => changes.push(open),
    );
    const call = (outcome: 'success' | 'failure') => {
      const admission = breaker.admit(0);
      assert.ok(admission.admitted);
      breaker.record(admission, outcome);
      breaker.release();
    };
    call('failure');
    call('failure');
    call('success');
    call('failure');
    call('failure');
    assert.equal(breaker.state, 'closed', 'a success resets the count');
    call('failure');
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.admit(0).admitted, false);
    now = 999;
    assert.equal(breaker.admit(0).admitted, false);
    now = 1000;
    assert.equal(breaker.state, 'half-open');
    const probe = breaker.admit(0);
    assert.deepEqual(probe, { admitted: true, probe: true });
    assert.equal(breaker.admit(0).admitted, false, 'one probe at a time');
    breaker.record(probe, 'failure');
    breaker.release();
    assert.equal(breaker.state, 'open', 'a failed probe opens again');
    now = 2000;
    const second = breaker.admit(0);
    assert.ok(second.admitted);
    breaker.record(second, 'success');
    breaker.release();
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(changes, [true, true, false]);
  });

  it('refuses over maxRequests and maxPendingRequests', () => {
    const breaker = new CircuitBreaker(policy);
    assert.ok(breaker.admit(0).admitted);
    assert.ok(breaker.admit(0).admitted);
    assert.equal(breaker.admit(0).admitted, false);
    breaker.release();
    assert.ok(breaker.admit(0).admitted);
    breaker.release();
    assert.equal(breaker.admit(5).admitted, false);
  });

  it('counts queued requests only once enough calls are in flight to fill the queue', () => {
    const breaker = new CircuitBreaker({ ...policy, maxRequests: 10, maxPendingRequests: 2 });
    let counted = 0;
    const pending = () => {
      counted += 1;
      return 2;
    };
    assert.ok(breaker.admit(pending).admitted);
    assert.ok(breaker.admit(pending).admitted);
    assert.equal(counted, 0, 'below maxPendingRequests calls in flight, nothing can be queued');
    assert.equal(breaker.admit(pending).admitted, false);
    assert.equal(counted, 1);
  });
});

describe('egress OutlierDetector', () => {
  const endpoints = (count: number) =>
    Array.from({ length: count }, (_, i) => ({ origin: `http://10.0.0.${i}:80`, active: 0 }) as Endpoint);
  /** The failure-percentage rule off, as by default. */
  const noShare = { failurePercent: 0, failurePercentMinRequests: 50, failurePercentIntervalMs: 10_000 };

  it('ejects after consecutive failures for a growing time, within the max percent', () => {
    let now = 0;
    const ejected: number[] = [];
    const detector = new OutlierDetector(
      { ...noShare, consecutiveFailures: 2, baseEjectionMs: 100, maxEjectionMs: 250, maxEjectedPercent: 50 },
      () => now,
      (_, ms) => ejected.push(ms),
    );
    const all = endpoints(4);
    const [a, b, c] = all;
    detector.record(a, 'failure', all);
    detector.record(a, 'neutral', all);
    detector.record(a, 'failure', all);
    assert.ok(detector.isEjected(a));
    assert.deepEqual(detector.eligible(all), [all[1], all[2], all[3]]);
    assert.equal(detector.eligible(all), detector.eligible(all), 'the same array until something changes');
    detector.record(b, 'failure', all);
    detector.record(b, 'failure', all);
    detector.record(c, 'failure', all);
    detector.record(c, 'failure', all);
    assert.ok(!detector.isEjected(c), 'never more than 50% (2 of 4) out');
    now = 100;
    assert.ok(!detector.isEjected(a));
    assert.equal(detector.eligible(all).length, 4);
    detector.record(a, 'failure', all);
    detector.record(a, 'failure', all);
    now = 300;
    detector.record(a, 'failure', all);
    detector.record(a, 'failure', all);
    now = 1000;
    detector.record(a, 'failure', all);
    detector.record(a, 'failure', all);
    assert.deepEqual(ejected, [100, 100, 200, 250, 250]);
  });

  it('ejects the last endpoint only when maxEjectedPercent is 100', () => {
    const one = endpoints(1);
    const half = new OutlierDetector({
      ...noShare,
      consecutiveFailures: 1,
      baseEjectionMs: 100,
      maxEjectionMs: 100,
      maxEjectedPercent: 50,
    });
    half.record(one[0], 'failure', one);
    assert.equal(half.eligible(one).length, 1);
    const all = new OutlierDetector({
      ...noShare,
      consecutiveFailures: 1,
      baseEjectionMs: 100,
      maxEjectionMs: 100,
      maxEjectedPercent: 100,
    });
    all.record(one[0], 'failure', one);
    assert.equal(all.eligible(one).length, 0);
  });

  it('ejects by failure percentage within a window, once it has the minimum of calls', () => {
    let now = 0;
    const ejected: number[] = [];
    const detector = new OutlierDetector(
      {
        // The consecutive rule off: only the share ejects here.
        consecutiveFailures: 0,
        failurePercent: 50,
        failurePercentMinRequests: 10,
        failurePercentIntervalMs: 1000,
        baseEjectionMs: 100,
        maxEjectionMs: 100,
        maxEjectedPercent: 50,
      },
      () => now,
      (_, ms) => ejected.push(ms),
    );
    const all = endpoints(2);
    const [flaky] = all;
    // Fails every other call: half of the calls.
    for (let i = 0; i < 9; i += 1) detector.record(flaky, i % 2 === 0 ? 'failure' : 'success', all);
    assert.ok(!detector.isEjected(flaky), 'under the minimum of 10 calls (5 of 9 failed)');
    detector.record(flaky, 'success', all);
    assert.ok(!detector.isEjected(flaky), 'a success ejects nobody');
    detector.record(flaky, 'failure', all);
    assert.ok(detector.isEjected(flaky), '6 of 11 failed');
    // Back after 100 ms: 20 good calls, then a new window in which half fail — the old calls do not
    // dilute it.
    now = 200;
    for (let i = 0; i < 20; i += 1) detector.record(flaky, 'success', all);
    now = 1300;
    for (let i = 0; i < 10; i += 1) detector.record(flaky, i % 2 === 0 ? 'success' : 'failure', all);
    assert.ok(detector.isEjected(flaky), '5 of 10 in this window');
    assert.deepEqual(ejected, [100, 100]);
  });
});

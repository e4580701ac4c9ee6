import assert from 'node:assert/strict';
import { zeroConfigPolicy } from './policy.js';
import {
  backoffMs,
  classifyError,
  isSafeToResend,
  matchesRetryOn,
  RetryBudget,
  retryAfterMs,
} from './retry.js';

describe('egress retry decisions', () => {
  it("reads an upstream's Retry-After as delay-seconds or an HTTP-date", () => {
    const now = () => Date.parse('Sun, 06 Nov 1994 08:49:30 GMT');
    assert.equal(retryAfterMs('2', now), 2000);
    assert.equal(retryAfterMs(' 0 ', now), 0);
    assert.equal(retryAfterMs('Sun, 06 Nov 1994 08:49:37 GMT', now), 7000);
    assert.equal(retryAfterMs('Sun, 06 Nov 1994 08:49:00 GMT', now), 0, 'a date past is no wait');
    for (const bad of [undefined, '', '-1', '1.5', 'soon', ['1']]) {
      assert.equal(retryAfterMs(bad, now), undefined, JSON.stringify(bad));
    }
  });

  it('computes full-jitter backoff like the reference sidecar: 120, 240, 480, then capped at 1000', () => {
    const policy = zeroConfigPolicy('http://up:1').retry;
    const max = () => 0.999_999_9;
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((retry) => backoffMs(retry, policy, max)),
      [120, 240, 480, 960, 1000],
    );
    assert.equal(
      backoffMs(3, policy, () => 0),
      0,
    );
    for (let i = 0; i < 100; i += 1) {
      const wait = backoffMs(2, policy);
      assert.ok(wait >= 0 && wait <= 240);
    }
  });

  it('classifies connection errors', () => {
    assert.equal(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'connect-failure');
    assert.equal(
      classifyError(Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
      'connect-failure',
    );
    assert.equal(
      classifyError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }) })),
      'connect-failure',
    );
    assert.equal(
      classifyError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
      'timeout',
    );
    assert.equal(
      classifyError(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })),
      'reset',
    );
    assert.equal(classifyError(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'reset');
  });

  it('resends only idempotent methods or requests with an Idempotency-Key', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
      assert.ok(isSafeToResend(method, {}), method);
    assert.equal(isSafeToResend('POST', {}), false);
    assert.equal(isSafeToResend('PATCH', {}), false);
    assert.ok(isSafeToResend('POST', { 'idempotency-key': 'k1' }));
  });

  it('matches retry-on conditions', () => {
    const base = zeroConfigPolicy('http://up:1').retry;
    const policy = {
      ...base,
      retryOn: new Set(['gateway-error', 'reset'] as const),
      statuses: new Set([409]),
    };
    assert.ok(matchesRetryOn(policy, { kind: 'status', status: 503 }));
    assert.ok(!matchesRetryOn(policy, { kind: 'status', status: 500 }));
    assert.ok(matchesRetryOn(policy, { kind: 'status', status: 409 }));
    assert.ok(matchesRetryOn(policy, { kind: 'reset' }));
    assert.ok(!matchesRetryOn(policy, { kind: 'timeout' }));
    assert.ok(
      matchesRetryOn({ ...policy, retryOn: new Set(['5xx'] as const) }, { kind: 'status', status: 500 }),
    );
    assert.ok(!matchesRetryOn(base, { kind: 'status', status: 502 }), 'zero-config relays statuses');
  });

  it('matches the gRPC conditions by grpc-status, and only them: UNAVAILABLE is not INTERNAL', () => {
    const grpcPolicy = {
      ...zeroConfigPolicy('http://up:1').retry,
      retryOn: new Set(['unavailable', 'resource-exhausted'] as const),
      statuses: new Set<number>(),
    };
    const grpcOutcome = (grpcStatus: number, status: number) =>
      ({ kind: 'status', status, grpcStatus }) as const;
    assert.ok(matchesRetryOn(grpcPolicy, grpcOutcome(14, 503)), 'UNAVAILABLE');
    assert.ok(matchesRetryOn(grpcPolicy, grpcOutcome(8, 429)), 'RESOURCE_EXHAUSTED');
    assert.ok(!matchesRetryOn(grpcPolicy, grpcOutcome(13, 500)), 'INTERNAL is not listed');
    assert.ok(!matchesRetryOn(grpcPolicy, grpcOutcome(0, 200)), 'OK');
    assert.ok(!matchesRetryOn(grpcPolicy, { kind: 'status', status: 503 }), 'an HTTP 503 is no gRPC status');
    const all = new Set([
      'cancelled',
      'deadline-exceeded',
      'internal',
      'resource-exhausted',
      'unavailable',
    ] as const);
    assert.deepEqual(
      [1, 2, 4, 8, 13, 14, 16].map((code) =>
        matchesRetryOn({ ...grpcPolicy, retryOn: all }, grpcOutcome(code, 500)),
      ),
      [true, false, true, true, true, true, false],
    );
    // The HTTP mapping still serves the HTTP conditions: gateway-error covers UNAVAILABLE.
    assert.ok(
      matchesRetryOn({ ...grpcPolicy, retryOn: new Set(['gateway-error'] as const) }, grpcOutcome(14, 503)),
    );
  });

  describe('RetryBudget', () => {
    it('allows ratio × requests plus the minimum per second over the window', () => {
      let now = 1_000_000;
      const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 0 }, () => now);
      for (let i = 0; i < 50; i += 1) budget.recordRequest();
      let granted = 0;
      for (let i = 0; i < 100; i += 1) if (budget.tryWithdraw()) granted += 1;
      assert.equal(granted, 10);
      // Once the window has passed, the old requests and retries no longer count.
      now += 10_000;
      assert.equal(budget.tryWithdraw(), false);
      budget.recordRequest();
      budget.recordRequest();
      budget.recordRequest();
      budget.recordRequest();
      budget.recordRequest();
      assert.equal(budget.tryWithdraw(), true);
      assert.equal(budget.tryWithdraw(), false);
    });

    it('always leaves the minimum rate for a quiet service', () => {
      const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 1 }, () => 0, 3_000);
      budget.recordRequest();
      assert.deepEqual(
        [1, 2, 3, 4].map(() => budget.tryWithdraw()),
        [true, true, true, false],
      );
    });
  });
});

import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MeshError } from '../../services/runtime/errors.js';
import { CallSignal } from '../shared/signal.js';
import type { IngressContext } from './context.js';
import { RateLimiter } from './rate-limit.js';

function fakeContext(
  options: { address?: string; route?: string; headers?: Record<string, string>; sub?: string } = {},
) {
  const set: Record<string, string> = {};
  const ctx = {
    req: {
      headers: options.headers ?? {},
    } as unknown as IncomingMessage,
    res: { setHeader: (name: string, value: string) => (set[name] = value) } as unknown as ServerResponse,
    requestId: 'r',
    clientAddress: options.address ?? '::ffff:10.0.0.1',
    gone: new CallSignal(),
    method: 'GET',
    path: '/x',
    query: '',
    route: options.route ?? '/x',
    operation: undefined,
    miss: undefined,
    pathParams: {},
    claims: options.sub ? { sub: options.sub } : undefined,
    body: null,
  } satisfies IngressContext;
  return { ctx, set };
}

function refusal(fn: () => void): MeshError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MeshError);
    return err;
  }
  assert.fail('expected a 429');
}

describe('ingress rate limiter', () => {
  let now: number;
  beforeEach(() => (now = 0));

  it('allows a burst, refuses the next with 429 and Retry-After, and refills at the rate', () => {
    const limiter = new RateLimiter([{ key: 'address', requestsPerSecond: 2, burst: 3 }], () => now);
    for (let i = 0; i < 3; i += 1) {
      const { ctx, set } = fakeContext();
      limiter.check(ctx, 'before-auth');
      assert.equal(set['ratelimit-remaining'], String(2 - i));
      assert.equal(set['ratelimit-limit'], '3');
    }
    const error = refusal(() => limiter.check(fakeContext().ctx, 'before-auth'));
    assert.equal(error.status, 429);
    assert.equal(error.headers['retry-after'], '1');
    assert.equal(error.headers['ratelimit-remaining'], '0');
    assert.equal(error.headers['ratelimit-policy'], '3;w=2');
    now += 500; // one token back at 2/s
    limiter.check(fakeContext().ctx, 'before-auth');
    refusal(() => limiter.check(fakeContext().ctx, 'before-auth'));
  });

  it('keeps one bucket per client key and per route', () => {
    const limiter = new RateLimiter([{ key: 'header:x-api-key', requestsPerSecond: 1 }], () => now);
    limiter.check(fakeContext({ headers: { 'x-api-key': 'a' } }).ctx, 'before-auth');
    refusal(() => limiter.check(fakeContext({ headers: { 'x-api-key': 'a' } }).ctx, 'before-auth'));
    limiter.check(fakeContext({ headers: { 'x-api-key': 'b' } }).ctx, 'before-auth');
    limiter.check(fakeContext({ headers: { 'x-api-key': 'a' }, route: '/y' }).ctx, 'before-auth');
  });

  it('checks subject rules only after auth, and only matching method and path', () => {
    const limiter = new RateLimiter(
      [
        { key: 'subject', requestsPerSecond: 1 },
        { key: 'address', requestsPerSecond: 1, method: 'post' },
        { key: 'address', requestsPerSecond: 1, path: '/other' },
      ],
      () => now,
    );
    for (let i = 0; i < 3; i += 1) limiter.check(fakeContext({ sub: 'u' }).ctx, 'before-auth');
    limiter.check(fakeContext({ sub: 'u' }).ctx, 'after-auth');
    refusal(() => limiter.check(fakeContext({ sub: 'u' }).ctx, 'after-auth'));
    limiter.check(fakeContext({ sub: 'v' }).ctx, 'after-auth');
  });
});

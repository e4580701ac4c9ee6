import assert from 'node:assert/strict';
import {
  ConsistentHashBalancer,
  LeastRequestBalancer,
  PeakEwmaBalancer,
  RoundRobinBalancer,
} from './balancer.js';
import { PeakEwma } from './peak-ewma.js';
import type { Endpoint } from './endpoints.js';

/** Balancers only read `origin` and `active`; no pool is needed. */
function endpoints(count: number): Endpoint[] {
  return Array.from(
    { length: count },
    (_, i) => ({ origin: `http://10.0.0.${i}:80`, active: 0 }) as Endpoint,
  );
}

describe('egress balancers', () => {
  it('round_robin cycles and avoids endpoints already tried', () => {
    const list = endpoints(3);
    const balancer = new RoundRobinBalancer();
    const picks = Array.from({ length: 6 }, () => balancer.pick(list, { avoid: new Set() }));
    assert.deepEqual(picks, [...list, ...list]);
    for (let i = 0; i < 5; i += 1)
      assert.notEqual(balancer.pick(list, { avoid: new Set([list[0]]) }), list[0]);
    assert.equal(
      balancer.pick([list[0]], { avoid: new Set([list[0]]) }),
      list[0],
      'falls back when all were tried',
    );
    assert.equal(balancer.pick([], { avoid: new Set() }), undefined);
  });

  it('peak_ewma prefers the lower latency × (active + 1) of two random endpoints', () => {
    const now = 0;
    const list = endpoints(2).map(
      (endpoint) => ({ ...endpoint, latency: new PeakEwma(() => now) }) as Endpoint,
    );
    list[0].latency.observe(100);
    list[1].latency.observe(40);
    const balancer = new PeakEwmaBalancer();
    const pick = () => balancer.pick(list, { avoid: new Set() });
    assert.equal(pick(), list[1], 'faster');
    list[1].active = 2; // 40 × 3 = 120 > 100 × 1
    assert.equal(pick(), list[0], 'the faster one is busier than it is fast');
    list[1].active = 0;
    assert.equal(balancer.pick(list, { avoid: new Set([list[1]]) }), list[0], 'a retry avoids the tried one');
  });

  it('least_request prefers the less busy of two random endpoints', () => {
    const list = endpoints(2);
    list[0].active = 5;
    const balancer = new LeastRequestBalancer();
    for (let i = 0; i < 20; i += 1) assert.equal(balancer.pick(list, { avoid: new Set() }), list[1]);
    const many = endpoints(10);
    many.forEach((endpoint, index) => (endpoint.active = index));
    const counts = new Map<Endpoint, number>();
    for (let i = 0; i < 2000; i += 1) {
      const picked = balancer.pick(many, { avoid: new Set() })!;
      counts.set(picked, (counts.get(picked) ?? 0) + 1);
    }
    assert.equal(counts.get(many[9]) ?? 0, 0, 'the busiest endpoint never wins a pair');
    assert.ok((counts.get(many[0]) ?? 0) > (counts.get(many[8]) ?? 0));
  });

  it('consistent_hash keeps keys on their endpoint, and only the removed endpoint’s keys move', () => {
    const list = endpoints(5);
    const balancer = new ConsistentHashBalancer();
    const keys = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
    const before = new Map(
      keys.map((key) => [key, balancer.pick(list, { avoid: new Set(), hashKey: key })!]),
    );
    for (const key of keys.slice(0, 50)) {
      assert.equal(balancer.pick(list, { avoid: new Set(), hashKey: key }), before.get(key), 'stable');
    }
    const share = new Map<Endpoint, number>();
    for (const endpoint of before.values()) share.set(endpoint, (share.get(endpoint) ?? 0) + 1);
    for (const endpoint of list)
      assert.ok((share.get(endpoint) ?? 0) > 200, 'every endpoint gets a fair share');

    const removed = list[2];
    const remaining = list.filter((endpoint) => endpoint !== removed);
    let moved = 0;
    for (const key of keys) {
      const after = balancer.pick(remaining, { avoid: new Set(), hashKey: key })!;
      if (before.get(key) === removed) assert.notEqual(after, removed);
      else if (after !== before.get(key)) moved += 1;
    }
    assert.equal(moved, 0, 'keys of the remaining endpoints stay where they were');
  });
});

import assert from 'node:assert/strict';
import { RoundRobinBalancer } from './balancer.js';
import type { Endpoint } from './endpoints.js';
import { chooseWeighted, SplitPicker, type EndpointGroup } from './split.js';

/** The picker only reads `origin`, `group` and `active` of endpoints; no pool is needed. */
function group(name: string, weight: number, size: number): EndpointGroup & { list: Endpoint[] } {
  const list = Array.from(
    { length: size },
    (_, i) => ({ origin: `http://${name}-${i}:80`, group: name, active: 0 }) as Endpoint,
  );
  return { name, weight, balancer: new RoundRobinBalancer(), eligible: () => list, list };
}

/** A random source that returns the given values in turn. */
function draws(...values: number[]): () => number {
  let next = 0;
  return () => {
    if (next >= values.length) throw new Error('no more draws scripted');
    return values[next++];
  };
}

/** mulberry32: a small seeded PRNG, so a distribution check gives the same numbers every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('egress weighted traffic split', () => {
  describe('chooseWeighted', () => {
    const stable = { name: 'stable', weight: 90 };
    const canary = { name: 'canary', weight: 10 };
    const off = { name: 'off', weight: 0 };

    it('gives each group a range of the draw proportional to its weight, in order', () => {
      const groups = [stable, off, canary];
      const expected: [number, typeof stable][] = [
        [0, stable],
        [0.8999, stable],
        [0.9, canary],
        [0.999_999_9, canary],
      ];
      for (const [draw, group] of expected)
        assert.equal(
          chooseWeighted(groups, () => draw),
          group,
          `${draw}`,
        );
    });

    it('never picks a group with weight 0, nor one that is not accepted', () => {
      for (const draw of [0, 0.25, 0.5, 0.75, 0.999]) {
        assert.equal(
          chooseWeighted([off, canary], () => draw),
          canary,
        );
        assert.equal(
          chooseWeighted(
            [stable, canary],
            () => draw,
            (g) => g !== stable,
          ),
          canary,
        );
      }
      assert.equal(
        chooseWeighted([off], () => 0.5),
        undefined,
      );
      assert.equal(
        chooseWeighted(
          [stable, canary],
          () => 0.5,
          () => false,
        ),
        undefined,
      );
    });

    it('spreads draws of a seeded source by weight', () => {
      const random = seeded(42);
      const counts = new Map<string, number>();
      for (let i = 0; i < 10_000; i += 1) {
        const chosen = chooseWeighted([stable, off, canary], random)!;
        counts.set(chosen.name, (counts.get(chosen.name) ?? 0) + 1);
      }
      assert.equal(counts.get('off'), undefined);
      const canaryShare = (counts.get('canary') ?? 0) / 10_000;
      assert.ok(Math.abs(canaryShare - 0.1) < 0.01, `canary share ${canaryShare}`);
    });
  });

  describe('SplitPicker', () => {
    it('picks the group by the injected random draw, then an endpoint by the group balancer', () => {
      const stable = group('stable', 90, 2);
      const canary = group('canary', 10, 1);
      const picker = new SplitPicker([stable, canary], draws(0.1, 0.95, 0.5, 0.91));
      const picks = Array.from({ length: 4 }, () => picker.pick({ tried: new Set() })!.origin);
      assert.deepEqual(picks, [
        'http://stable-0:80',
        'http://canary-0:80',
        'http://stable-1:80',
        'http://canary-0:80',
      ]);
    });

    it("sends a call matching a group's headers to the first such group, without a draw, even when it is empty", () => {
      const stable = group('stable', 100, 1);
      const canary = { ...group('canary', 0, 1), headers: [['x-canary', 'on']] as const };
      const both = {
        ...group('both', 0, 1),
        headers: [
          ['x-canary', 'on'],
          ['x-team', 'a'],
        ] as const,
      };
      const empty = { ...group('empty', 0, 0), headers: [['x-canary', 'none']] as const };
      // No draws: a matched call needs none, and stable is the only weighted group.
      const picker = new SplitPicker([stable, canary, both, empty], draws());
      const groupOf = (headers: Record<string, string>) => picker.pick({ tried: new Set(), headers })?.group;
      assert.equal(groupOf({ 'x-canary': 'on' }), 'canary');
      assert.equal(groupOf({ 'x-canary': 'on', 'x-team': 'a' }), 'canary', 'the first match wins');
      assert.equal(groupOf({ 'x-canary': 'ON' }), 'stable');
      assert.equal(groupOf({}), 'stable');
      assert.equal(groupOf({ 'x-canary': 'none' }), undefined, 'no endpoint in the matched group: none');
      // A retry of a matched call stays in its group, even with every endpoint there tried.
      const tried = new Set([canary.list[0]]);
      assert.equal(picker.pick({ tried, headers: { 'x-canary': 'on' } }), canary.list[0]);
      const reordered = new SplitPicker([stable, both, canary], draws());
      assert.equal(
        reordered.pick({ tried: new Set(), headers: { 'x-canary': 'on', 'x-team': 'a' } })?.group,
        'both',
      );
    });

    it('does not draw for a service that is not split', () => {
      const only = group('', 1, 2);
      const picker = new SplitPicker([only], draws());
      assert.equal(picker.pick({ tried: new Set() }), only.list[0]);
      assert.equal(picker.pick({ tried: new Set() }), only.list[1]);
    });

    it('skips a group without eligible endpoints, and gives nothing to a group with weight 0', () => {
      const stable = group('stable', 50, 1);
      const empty = group('canary', 50, 0);
      const drained = group('old', 0, 1);
      // One candidate left: no draw is needed (draws() has none to give).
      const picker = new SplitPicker([stable, empty, drained], draws());
      assert.equal(picker.pick({ tried: new Set() }), stable.list[0]);
      assert.equal(picker.pick({ tried: new Set() }), stable.list[0]);
      assert.equal(new SplitPicker([empty, drained], draws()).pick({ tried: new Set() }), undefined);
    });

    it('draws the group from the hash key when there is one, so a key stays in its group', () => {
      const stable = group('stable', 50, 3);
      const canary = group('canary', 50, 3);
      const picker = new SplitPicker([stable, canary], draws());
      const groupOf = (key: string) => picker.pick({ tried: new Set(), hashKey: key })!.group;
      const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      const first = keys.map(groupOf);
      assert.deepEqual(keys.map(groupOf), first, 'same key, same group');
      assert.ok(first.includes('stable') && first.includes('canary'));
    });

    it('sends a retry to an untried endpoint of the same group first, then to another group', () => {
      const stable = group('stable', 90, 1);
      const canary = group('canary', 10, 2);
      const picker = new SplitPicker([stable, canary], draws(0.95, 0.3));
      const tried = new Set<Endpoint>();
      const first = picker.pick({ tried })!;
      assert.equal(first.group, 'canary');
      tried.add(first);
      const second = picker.pick({ tried })!;
      assert.equal(second.group, 'canary');
      assert.notEqual(second, first);
      tried.add(second);
      // The canary group is used up: the retry goes to stable (drawn among groups with untried endpoints).
      const third = picker.pick({ tried })!;
      assert.equal(third, stable.list[0]);
      tried.add(third);
      // Everything was tried: the group of the previous attempt picks again, without another draw.
      assert.equal(picker.pick({ tried })!.group, 'stable');
    });
  });
});

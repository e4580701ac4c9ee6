/**
 * Weighted traffic split between endpoint groups (canary): real upstream groups behind the real
 * egress router, with a seeded random source so the split of N calls is the same every run.
 */
import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import { ConfigError, validateConfig } from '../services/runtime/config.js';
import { startTestEgress } from './helpers/upstream-egress.js';
import { fail, reset, startUpstreams, type TestUpstream } from './helpers/upstream.js';
import { CleanupStack } from './helpers/wait.js';

/** mulberry32: a small seeded PRNG. */
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

const total = (ups: readonly TestUpstream[]) => ups.reduce((sum, up) => sum + up.count(), 0);

describe('egress weighted traffic split', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  async function upstreams(count: number, prefix: string): Promise<TestUpstream[]> {
    const started = await startUpstreams(count, prefix);
    for (const upstream of started) cleanup.defer(() => upstream.stop());
    return started;
  }

  it('shares N calls between the groups by weight, and sends nothing to a group with weight 0', async () => {
    const stable = await upstreams(2, 'stable');
    const canary = await upstreams(1, 'canary');
    const old = await upstreams(1, 'old');
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            split: {
              stable: { weight: 80, endpoints: stable.map((u) => u.url) },
              canary: { weight: 20, endpoints: canary.map((u) => u.url) },
              old: { weight: 0, endpoints: old.map((u) => u.url) },
            },
          },
        },
      },
      { random: seeded(7) },
    );
    const calls = 400;
    for (let i = 0; i < calls; i += 1) assert.equal((await egress.call('orders')).status, 200);

    const canaryShare = total(canary) / calls;
    assert.ok(Math.abs(canaryShare - 0.2) <= 0.05, `canary got ${total(canary)} of ${calls}`);
    assert.equal(total(stable) + total(canary), calls);
    assert.equal(total(old), 0, 'a group with weight 0 gets nothing');
    // Inside a group, its own balancer (round robin) spreads the calls.
    assert.ok(Math.abs(stable[0].count() - stable[1].count()) <= 1);
    // Each attempt's span names its group.
    const groups = (await egress.spans())
      .filter((span) => span.kind === SpanKind.CLIENT)
      .map((span) => span.attributes['mesh.split.group']);
    assert.equal(groups.filter((group) => group === 'canary').length, total(canary));
    assert.equal(groups.filter((group) => group === 'stable').length, total(stable));
  });

  it("sends calls with a group's headers to that group, weight 0 included, and only there", async () => {
    const stable = await upstreams(1, 'stable');
    const canary = await upstreams(1, 'canary');
    const dark = await upstreams(1, 'dark');
    dark[0].setBehaviour(reset);
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            retry: { attempts: 3, retryOn: ['reset'] },
            split: {
              stable: { weight: 100, endpoints: stable.map((u) => u.url) },
              // A dark launch: no share of the calls, reachable with the header only.
              canary: { weight: 0, endpoints: canary.map((u) => u.url), headers: { 'X-Canary': 'on' } },
              dark: {
                weight: 0,
                endpoints: dark.map((u) => u.url),
                headers: { 'x-canary': 'dark', 'x-team': 'a' },
              },
            },
          },
        },
      },
      { random: seeded(3) },
    );
    for (let i = 0; i < 6; i += 1) {
      assert.equal((await egress.call('orders', '/', { headers: { 'x-canary': 'on' } })).status, 200);
    }
    // Values match exactly (case included), and every header of a group must be there.
    const matchingNone: Record<string, string>[] = [
      {},
      { 'x-canary': 'ON' },
      { 'x-canary': 'dark' },
      { 'x-team': 'a' },
    ];
    for (const headers of matchingNone) {
      assert.equal((await egress.call('orders', '/', { headers })).status, 200);
    }
    assert.deepEqual([total(canary), total(stable), total(dark)], [6, 4, 0]);
    // A matched call stays in its group when it fails there: retried on the group only, then 502.
    const failed = await egress.call('orders', '/', { headers: { 'x-canary': 'dark', 'x-team': 'a' } });
    assert.equal(failed.status, 502);
    assert.deepEqual([total(dark), total(stable)], [3, 4]);
  });

  it('retries a call that failed on the canary on another endpoint, in the other group', async () => {
    const stable = await upstreams(1, 'stable');
    const canary = await upstreams(1, 'canary');
    canary[0].setBehaviour(reset);
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            retry: { attempts: 2, baseBackoffMs: 0 },
            outlierDetection: { consecutiveFailures: 0 },
            split: {
              stable: { weight: 50, endpoints: stable.map((u) => u.url) },
              canary: { weight: 50, endpoints: canary.map((u) => u.url) },
            },
          },
        },
      },
      { random: seeded(11) },
    );
    for (let i = 0; i < 20; i += 1) {
      const res = await egress.call('orders');
      assert.equal(res.status, 200);
      assert.equal((res.json() as { upstream: string }).upstream, 'stable-0');
    }
    assert.ok(canary[0].count() > 0, 'the canary was tried');
    assert.equal(stable[0].count(), 20);
    assert.equal(
      await egress.metric('mesh_upstream_retries_total', { service: 'orders' }),
      canary[0].count(),
    );
  });

  it('keeps outlier detection per group: an ejected canary leaves all calls to stable', async () => {
    const stable = await upstreams(2, 'stable');
    const canary = await upstreams(1, 'canary');
    canary[0].setBehaviour(fail(500));
    let now = 1_000_000;
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            retry: { attempts: 1 },
            circuitBreaker: { consecutiveFailures: 0 },
            // 100%: the canary's single endpoint may be ejected.
            outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 10_000, maxEjectedPercent: 100 },
            split: {
              stable: { weight: 50, endpoints: stable.map((u) => u.url) },
              canary: { weight: 50, endpoints: canary.map((u) => u.url) },
            },
          },
        },
      },
      { random: seeded(3), now: () => now },
    );
    for (let i = 0; i < 40; i += 1) await egress.call('orders');
    assert.equal(canary[0].count(), 2, 'the canary is out after its second failure');
    assert.equal(total(stable), 38);
    assert.equal(await egress.metric('mesh_outlier_ejections_total', { service: 'orders' }), 1);

    now += 10_000;
    canary[0].setBehaviour({ kind: 'ok' });
    for (let i = 0; i < 40; i += 1) assert.equal((await egress.call('orders')).status, 200);
    assert.ok(canary[0].count() > 2 + 10, `readmitted, the canary gets its share (${canary[0].count()})`);
  });

  it('counts maxEjectedPercent within each group, so a group is never emptied by it', async () => {
    const stable = await upstreams(1, 'stable');
    const canary = await upstreams(2, 'canary');
    stable[0].setBehaviour(fail(500));
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            retry: { attempts: 1 },
            circuitBreaker: { consecutiveFailures: 0 },
            // Over the whole service (3 endpoints) 50% would allow one ejection; in the stable group
            // (1 endpoint) it allows none.
            outlierDetection: { consecutiveFailures: 2, maxEjectedPercent: 50 },
            split: {
              stable: { weight: 50, endpoints: stable.map((u) => u.url) },
              canary: { weight: 50, endpoints: canary.map((u) => u.url) },
            },
          },
        },
      },
      { random: seeded(9) },
    );
    for (let i = 0; i < 40; i += 1) await egress.call('orders');
    assert.equal(await egress.metric('mesh_outlier_ejections_total', { service: 'orders' }), 0);
    assert.ok(stable[0].count() > 10, `stable kept its share (${stable[0].count()} of 40)`);
  });

  it('takes a group from DNS, and skips it while it has no endpoints', async () => {
    const stable = await upstreams(1, 'stable');
    const canary = await upstreams(1, 'canary');
    let answer: string[] = [];
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          orders: {
            split: {
              stable: { weight: 50, endpoints: [stable[0].url] },
              canary: { weight: 50, dns: { name: 'orders-canary.shop.svc', port: canary[0].port } },
            },
          },
        },
      },
      { random: seeded(5), resolve: () => Promise.resolve(answer) },
    );
    for (let i = 0; i < 10; i += 1) assert.equal((await egress.call('orders')).status, 200);
    assert.equal(stable[0].count(), 10, 'no canary endpoint yet: its share goes to stable');
    answer = ['127.0.0.1'];
    await egress.egress.service('orders')!.refreshEndpoints();
    for (let i = 0; i < 40; i += 1) assert.equal((await egress.call('orders')).status, 200);
    assert.ok(canary[0].count() > 10, `canary got ${canary[0].count()} of 40`);
  });

  it('refuses a split without weights, and a service with both a split and its own endpoints', async () => {
    assert.throws(
      () =>
        validateConfig({
          egress: { services: { orders: { split: { stable: { endpoints: ['http://a:1'] } } } } },
        }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.pointer === '/egress/services/orders/split/stable/weight'),
    );
    const [up] = await upstreams(1, 'up');
    await assert.rejects(
      startTestEgress(cleanup, {
        services: {
          orders: { endpoints: [up.url], split: { stable: { weight: 1, endpoints: [up.url] } } },
        },
      }),
      /split/,
    );
  });
});

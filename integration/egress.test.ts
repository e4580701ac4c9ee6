import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import { startTestEgress } from './helpers/upstream-egress.js';
import {
  fail,
  hang,
  ok,
  reset,
  slow,
  startUpstreams,
  TestUpstream,
  type Behaviour,
} from './helpers/upstream.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

type Problem = { status: number; code: string; detail: string };

describe('egress router', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  async function upstreams(count: number, prefix = 'up'): Promise<TestUpstream[]> {
    const started = await startUpstreams(count, prefix);
    for (const upstream of started) cleanup.defer(() => upstream.stop());
    return started;
  }

  describe('routing', () => {
    it('picks the service from the Host header in its short and namespaced forms', async () => {
      const [orders, users] = await upstreams(2);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: { namespace: 'shop', endpoints: [orders.url] },
          users: { endpoints: [users.url] },
        },
      });
      for (const host of [
        'orders',
        'orders:80',
        'orders.shop',
        'orders.shop.svc',
        'orders.shop.svc.cluster.local',
      ]) {
        const res = await egress.call(host, '/a?b=1');
        assert.equal(res.status, 200, host);
        assert.equal((res.json() as { upstream: string }).upstream, 'up-0', host);
      }
      // A service without a namespace matches any namespace; one with a namespace only its own.
      assert.equal((await egress.call('users.other.svc.cluster.local')).status, 200);
      assert.equal((await egress.call('orders.other.svc')).status, 404);
      assert.equal(orders.count(), 5);
      assert.equal(orders.requests[0].url, '/a?b=1');
      assert.equal(users.count(), 1);
    });

    it('answers 404 problem+json naming an unknown service, without calling anything', async () => {
      const [orders] = await upstreams(1);
      const egress = await startTestEgress(cleanup, { services: { orders: { endpoints: [orders.url] } } });
      const res = await egress.call('payments.shop.svc', '/x');
      assert.equal(res.status, 404);
      assert.match(String(res.headers['content-type']), /application\/problem\+json/);
      const problem = res.json() as Problem;
      assert.equal(problem.code, 'MESH_NOT_FOUND');
      assert.match(problem.detail, /payments\.shop\.svc/);
      assert.match(
        String(res.headers['x-request-id']),
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        'a generated request id',
      );
      assert.equal(orders.count(), 0);
    });

    it('routes by the longest path prefix when the Host names no service, stripping it on request', async () => {
      const [orders, ordersAdmin] = await upstreams(2);
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: [orders.url] }, 'orders-admin': { endpoints: [ordersAdmin.url] } },
        routes: [
          { prefix: '/orders', service: 'orders', stripPrefix: true },
          { prefix: '/orders/admin/', service: 'orders-admin' },
        ],
      });
      assert.equal((await egress.call('127.0.0.1', '/orders/42?x=1')).status, 200);
      assert.equal((await egress.call('127.0.0.1', '/orders/admin/stats')).status, 200);
      assert.equal((await egress.call('127.0.0.1', '/ordersx')).status, 404);
      assert.deepEqual(
        orders.requests.map((r) => r.url),
        ['/42?x=1'],
      );
      assert.deepEqual(
        ordersAdmin.requests.map((r) => r.url),
        ['/orders/admin/stats'],
      );
    });

    it('forwards method, body and headers, adds x-forwarded-for and the request id, drops hop-by-hop headers', async () => {
      const [orders] = await upstreams(1);
      const egress = await startTestEgress(cleanup, { services: { orders: { endpoints: [orders.url] } } });
      const res = await egress.call('orders', '/items', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-request-id': 'req-1',
          'proxy-authorization': 'Basic eDp5',
        },
        body: '{"n":1}',
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-request-id'], 'req-1');
      const seen = orders.requests[0];
      assert.equal(seen.method, 'POST');
      assert.equal(seen.body, '{"n":1}');
      assert.equal(seen.headers['x-request-id'], 'req-1');
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-host'], 'orders');
      assert.equal(seen.headers.host, `127.0.0.1:${orders.port}`);
      assert.equal(seen.headers['proxy-authorization'], undefined);
    });

    it('streams a body larger than maxRetryBodyBytes', async () => {
      const [orders] = await upstreams(1);
      const egress = await startTestEgress(cleanup, {
        maxRetryBodyBytes: 10,
        services: { orders: { endpoints: [orders.url] } },
      });
      const body = 'x'.repeat(100_000);
      assert.equal((await egress.call('orders', '/big', { method: 'PUT', body })).status, 200);
      assert.equal(orders.requests[0].body, body);
    });
  });

  describe('round_robin', () => {
    it('spreads requests evenly over the static endpoints', async () => {
      const ups = await upstreams(3);
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: ups.map((u) => u.url) } },
      });
      for (let i = 0; i < 30; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.deepEqual(
        ups.map((u) => u.count()),
        [10, 10, 10],
      );
      assert.equal(
        await egress.metric('mesh_upstream_requests_total', { service: 'orders', result: '2xx' }),
        30,
      );
    });
  });

  describe('least_request', () => {
    it('sends new requests to the endpoint with fewer requests in flight', async () => {
      const [busy, idle] = await upstreams(2);
      busy.setBehaviour(hang);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: { endpoints: [busy.url, idle.url], loadBalancer: 'least_request', retry: { attempts: 1 } },
        },
      });
      const idleEndpoint = egress.egress.service('orders')!.endpoints.all.find((e) => e.origin === idle.url)!;
      const pending: Promise<unknown>[] = [];
      for (let i = 1; i <= 10; i += 1) {
        const call = egress.call('orders');
        pending.push(call.catch(() => undefined));
        await waitFor(() => busy.count() + idle.count() === i, { what: `request ${i} to arrive` });
        await waitFor(() => idleEndpoint.active === 0, { what: 'the idle endpoint to finish' });
      }
      // round_robin would have sent 5 to the hanging endpoint; least_request sends it one.
      assert.equal(busy.count(), 1);
      assert.equal(idle.count(), 9);
      await busy.stop();
      await Promise.all(pending);
    });
  });

  describe('peak_ewma', () => {
    it('sends most calls to the faster endpoint, which least_request (all idle) would not', async () => {
      const [slowOne, fast] = await upstreams(2);
      slowOne.setBehaviour(slow(150));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: { endpoints: [slowOne.url, fast.url], loadBalancer: 'peak_ewma', retry: { attempts: 1 } },
        },
      });
      // One call at a time: no endpoint is ever busier than the other, only slower.
      for (let i = 0; i < 30; i += 1) assert.equal((await egress.call('orders')).status, 200);
      // Both start at the default estimate; the slow one's first answer (150 ms) sets its estimate,
      // after which it costs more than the fast one until that decays (seconds) — or until a fast
      // answer is slower still, which a loaded machine may make happen once.
      assert.ok(slowOne.count() <= 3, `the slow endpoint got ${slowOne.count()} of 30`);
      assert.equal(fast.count() + slowOne.count(), 30);
      // The status page shows each endpoint's estimate.
      const status = egress.egress.status() as unknown as {
        services: { groups: { endpoints: { origin: string; latencyMs: number | null }[] }[] }[];
      };
      const [slowEstimate, fastEstimate] = status.services[0].groups[0].endpoints.map((e) => e.latencyMs!);
      assert.ok(
        slowEstimate > 100 && fastEstimate < slowEstimate,
        `${slowEstimate} ms vs ${fastEstimate} ms`,
      );
    });
  });

  describe('consistent_hash', () => {
    it('keeps each key on one endpoint, and moves only the keys of a removed endpoint', async () => {
      const ups = await upstreams(3);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: { endpoints: ups.map((u) => u.url), loadBalancer: 'consistent_hash', hashHeader: 'X-User' },
        },
      });
      const owner = async (user: string) =>
        ((await egress.call('orders', '/', { headers: { 'x-user': user } })).json() as { upstream: string })
          .upstream;
      const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
      const before = new Map<string, string>();
      for (const user of users) before.set(user, await owner(user));
      for (const user of users.slice(0, 20)) assert.equal(await owner(user), before.get(user), user);
      assert.deepEqual(new Set(before.values()), new Set(['up-0', 'up-1', 'up-2']));

      // The endpoint list changes (as DNS discovery does it): up-1 goes away.
      egress.egress.service('orders')!.endpoints.update([ups[0].url, ups[2].url]);
      for (const user of users) {
        const now = await owner(user);
        if (before.get(user) === 'up-1') assert.notEqual(now, 'up-1', user);
        else assert.equal(now, before.get(user), `${user} must not move`);
      }
    });
  });

  describe('timeouts and failures', () => {
    it('answers 504 x-mesh-error: timeout when the overall timeout passes', async () => {
      const [slowOne] = await upstreams(1);
      slowOne.setBehaviour(hang);
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: [slowOne.url], timeoutMs: 300, retry: { attempts: 1 } } },
      });
      const res = await egress.call('orders');
      assert.equal(res.status, 504);
      assert.equal(res.headers['x-mesh-error'], 'timeout');
      assert.equal((res.json() as Problem).code, 'MESH_TIMEOUT');
    });

    it('answers 504 when the per-try timeout fires on the last attempt', async () => {
      const [slowOne] = await upstreams(1);
      slowOne.setBehaviour(hang);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: [slowOne.url],
            retry: { attempts: 2, perTryTimeoutMs: 200, retryOn: ['timeout'], baseBackoffMs: 0 },
          },
        },
      });
      const res = await egress.call('orders');
      assert.equal(res.status, 504);
      assert.equal(res.headers['x-mesh-error'], 'timeout');
      assert.equal(slowOne.count(), 2);
      assert.equal(
        await egress.metric('mesh_upstream_requests_total', { service: 'orders', result: 'timeout' }),
        2,
      );
    });

    it("takes the app's per-call controls over the service's timeouts and retries, and keeps them from the upstream", async () => {
      const [slowOne, flaky, fine] = await upstreams(3);
      slowOne.setBehaviour(hang);
      flaky.setBehaviour(reset);
      const egress = await startTestEgress(cleanup, {
        services: {
          slow: { endpoints: [slowOne.url], timeoutMs: 10_000, retry: { attempts: 1 } },
          flaky: { endpoints: [flaky.url], retry: { attempts: 1, retryOn: ['reset'], baseBackoffMs: 0 } },
          pair: {
            endpoints: [slowOne.url, fine.url],
            loadBalancer: 'round_robin',
            retry: { attempts: 2, retryOn: ['timeout'], baseBackoffMs: 0 },
          },
        },
      });
      // x-mesh-timeout-ms in place of the service's 10 s; the problem names the limit.
      const timedOut = await egress.call('slow', '/', { headers: { 'x-mesh-timeout-ms': '150' } });
      assert.equal(timedOut.status, 504);
      assert.match((timedOut.json() as Problem).detail, /x-mesh-timeout-ms \(150 ms\)/);
      // x-mesh-max-retries in place of attempts: 1 (no retries): the reset GET is tried 3 times.
      const retried = await egress.call('flaky', '/', { headers: { 'x-mesh-max-retries': '2' } });
      assert.equal(retried.status, 502);
      assert.equal(flaky.count(), 3);
      // x-mesh-per-try-timeout-ms where the service has none: the hung attempt gives way to the other endpoint.
      for (let i = 0; i < 2; i += 1) {
        const res = await egress.call('pair', '/', { headers: { 'x-mesh-per-try-timeout-ms': '100' } });
        assert.equal(res.status, 200);
      }
      assert.equal(fine.count(), 2);
      // The controls are the sidecar's: no upstream saw them.
      for (const upstream of [slowOne, flaky, fine]) {
        for (const seen of upstream.requests) {
          assert.deepEqual(
            Object.keys(seen.headers).filter((name) => name.startsWith('x-mesh-')),
            [],
          );
        }
      }
    });

    it('refuses a malformed per-call control with 400, naming each header and why', async () => {
      const [up] = await upstreams(1);
      const egress = await startTestEgress(cleanup, { services: { orders: { endpoints: [up.url] } } });
      const res = await egress.call('orders', '/', {
        headers: {
          'x-mesh-timeout-ms': '1.5s',
          'x-mesh-max-retries': '12',
          'x-mesh-per-try-timeout-ms': '200',
        },
      });
      assert.equal(res.status, 400);
      const problem = res.json() as Problem & { errors: { in: string; path: string; message: string }[] };
      assert.equal(problem.code, 'MESH_BAD_REQUEST');
      assert.deepEqual(
        problem.errors.map((e) => [e.in, e.path]),
        [
          ['header', '/x-mesh-timeout-ms'],
          ['header', '/x-mesh-max-retries'],
        ],
      );
      assert.match(problem.errors[1].message, /from 0 to 9/);
      assert.equal(up.count(), 0, 'nothing was sent');
    });

    it('answers 502 x-mesh-error: upstream-reset when the connection is refused', async () => {
      const [down] = await upstreams(1);
      await down.stop();
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: [down.url], retry: { attempts: 1 } } },
      });
      const res = await egress.call('orders');
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-mesh-error'], 'upstream-reset');
      assert.equal((res.json() as Problem).code, 'MESH_UPSTREAM_FAILED');
      assert.equal(
        await egress.metric('mesh_upstream_requests_total', { service: 'orders', result: 'connect-failure' }),
        1,
      );
    });

    it('answers 503 no-healthy-upstream for a service without endpoints', async () => {
      const egress = await startTestEgress(cleanup, { services: { orders: {} } });
      const res = await egress.call('orders');
      assert.equal(res.status, 503);
      assert.equal(res.headers['x-mesh-error'], 'no-healthy-upstream');
      assert.equal((res.json() as Problem).code, 'MESH_NO_HEALTHY_UPSTREAM');
    });

    it('relays upstream error statuses as they are when they are not retried', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(fail(500));
      const egress = await startTestEgress(cleanup, { services: { orders: { endpoints: [orders.url] } } });
      const res = await egress.call('orders');
      assert.equal(res.status, 500);
      assert.equal((res.json() as { upstream: string }).upstream, 'up-0');
      assert.equal(orders.count(), 1);
    });
  });

  describe('retries', () => {
    it('retries a reset GET on another endpoint', async () => {
      const ups = await upstreams(3);
      ups[0].setBehaviour(reset);
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: ups.map((u) => u.url), retry: { attempts: 3, baseBackoffMs: 0 } } },
      });
      for (let i = 0; i < 6; i += 1) assert.equal((await egress.call('orders')).status, 200);
      // Every call that met up-0 first went on to another endpoint, never back to up-0.
      assert.ok(ups[0].count() >= 1);
      assert.equal(ups[1].count() + ups[2].count(), 6);
      assert.equal(await egress.metric('mesh_upstream_retries_total', { service: 'orders' }), ups[0].count());
    });

    it('retries statuses only when retryOn names them', async () => {
      const [orders] = await upstreams(1);
      const relaying = await startTestEgress(cleanup, { services: { orders: { endpoints: [orders.url] } } });
      orders.script(fail(503));
      assert.equal((await relaying.call('orders')).status, 503);
      assert.equal(orders.count(), 1);

      const retrying = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: [orders.url],
            retry: { attempts: 3, retryOn: ['gateway-error'], statuses: [409], baseBackoffMs: 0 },
          },
        },
      });
      orders.script(fail(503), fail(409), ok());
      assert.equal((await retrying.call('orders')).status, 200);
      assert.equal(orders.count(), 4);
      orders.script(fail(500));
      assert.equal((await retrying.call('orders')).status, 500, '500 is not a gateway error');
    });

    it("waits the upstream's Retry-After before retrying, and does not retry one beyond maxBackoffMs", async () => {
      const [orders] = await upstreams(1);
      const egress = await startTestEgress(
        cleanup,
        {
          services: {
            orders: {
              endpoints: [orders.url],
              retry: {
                attempts: 2,
                retryOn: ['gateway-error'],
                statuses: [429],
                baseBackoffMs: 1,
                maxBackoffMs: 2000,
              },
            },
          },
        },
        // Jitter pinned to 0: any wait between the attempts is the Retry-After's.
        { random: () => 0 },
      );
      const busy = (seconds: string): Behaviour => ({
        kind: 'ok',
        status: 429,
        headers: { 'retry-after': seconds },
      });
      orders.script(busy('1'), ok());
      assert.equal((await egress.call('orders')).status, 200);
      const [first, second] = orders.requests;
      assert.ok(second.at - first.at >= 1000, `retried after ${Math.round(second.at - first.at)} ms`);

      orders.script(busy('5'));
      const refused = await egress.call('orders');
      assert.equal(refused.status, 429, '5 s is beyond maxBackoffMs: the caller gets the answer');
      assert.equal(refused.headers['retry-after'], '5');
      assert.equal(orders.count(), 3);
    });

    it('does not retry a POST that reached the upstream, unless it has an Idempotency-Key', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(reset);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: [orders.url],
            retry: { attempts: 3, retryOn: ['reset', '5xx'], baseBackoffMs: 0 },
          },
        },
      });
      const post = await egress.call('orders', '/pay', { method: 'POST', body: '{"amount":1}' });
      assert.equal(post.status, 502);
      assert.equal(post.headers['x-mesh-error'], 'upstream-reset');
      assert.equal(orders.count(), 1, 'the POST reached the upstream once and was not sent again');

      orders.setBehaviour(fail(500));
      assert.equal((await egress.call('orders', '/pay', { method: 'POST', body: '{}' })).status, 500);
      assert.equal(orders.count(), 2, 'a 5xx answer to a POST is not retried either');

      orders.setBehaviour(reset);
      orders.script(reset, ok());
      const keyed = await egress.call('orders', '/pay', {
        method: 'POST',
        headers: { 'idempotency-key': 'k-1' },
        body: '{"amount":1}',
      });
      assert.equal(keyed.status, 200);
      assert.equal(orders.count(), 4);
      assert.equal(orders.requests[3].body, '{"amount":1}');
    });

    it('retries a POST whose connection failed before anything was sent', async () => {
      const [down, orders] = await upstreams(2);
      await down.stop();
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: [down.url, orders.url], retry: { attempts: 2, baseBackoffMs: 0 } } },
      });
      const res = await egress.call('orders', '/pay', { method: 'POST', body: 'once' });
      assert.equal(res.status, 200);
      assert.equal(orders.count(), 1);
      assert.equal(orders.requests[0].body, 'once');
    });

    it('does not retry a streamed body (over maxRetryBodyBytes)', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(reset);
      const egress = await startTestEgress(cleanup, {
        maxRetryBodyBytes: 4,
        services: { orders: { endpoints: [orders.url], retry: { attempts: 3, baseBackoffMs: 0 } } },
      });
      assert.equal(
        (await egress.call('orders', '/doc', { method: 'PUT', body: 'more than four' })).status,
        502,
      );
      assert.equal(orders.count(), 1);
    });

    it('stops a retry storm with the budget when every endpoint fails', async () => {
      const ups = await upstreams(3);
      for (const up of ups) up.setBehaviour(fail(503));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: ups.map((u) => u.url),
            retry: {
              attempts: 5,
              retryOn: ['gateway-error'],
              baseBackoffMs: 0,
              budgetRatio: 0.2,
              minRetriesPerSecond: 0,
            },
            // Neither the breaker nor outlier detection may hide what the budget does.
            circuitBreaker: { consecutiveFailures: 0 },
            outlierDetection: { consecutiveFailures: 0 },
          },
        },
      });
      const results = await Promise.all(Array.from({ length: 50 }, () => egress.call('orders')));
      assert.ok(results.every((r) => r.status === 503));
      const sent = ups.reduce((sum, up) => sum + up.count(), 0);
      // Without a budget this would be 250 attempts; with 20% it is at most 50 + 10.
      assert.ok(sent <= 60, `sent ${sent}`);
      assert.equal(await egress.metric('mesh_upstream_retries_total', { service: 'orders' }), sent - 50);
      assert.ok(
        (await egress.metric('mesh_upstream_retry_budget_exhausted_total', { service: 'orders' })) > 0,
      );
    });
  });

  describe('circuit breaker', () => {
    it('opens after consecutive failures, refuses without contacting the upstream, half-opens and closes', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(fail(500));
      let now = 1_000_000;
      const egress = await startTestEgress(
        cleanup,
        {
          services: {
            orders: {
              endpoints: [orders.url],
              retry: { attempts: 1 },
              circuitBreaker: { consecutiveFailures: 3, openMs: 5_000 },
              outlierDetection: { consecutiveFailures: 0 },
            },
          },
        },
        { now: () => now },
      );
      for (let i = 0; i < 3; i += 1) assert.equal((await egress.call('orders')).status, 500);
      assert.equal(await egress.metric('mesh_circuit_breaker_open', { service: 'orders' }), 1);
      for (let i = 0; i < 5; i += 1) {
        const refused = await egress.call('orders');
        assert.equal(refused.status, 503);
        assert.equal(refused.headers['x-mesh-error'], 'circuit-open');
        assert.equal((refused.json() as Problem).code, 'MESH_CIRCUIT_OPEN');
      }
      assert.equal(orders.count(), 3, 'nothing reached the upstream while open');

      // Half-open: one probe goes through; it fails, so the circuit opens again.
      now += 5_000;
      assert.equal((await egress.call('orders')).status, 500);
      assert.equal(orders.count(), 4);
      assert.equal((await egress.call('orders')).status, 503);
      assert.equal(orders.count(), 4);

      // Next probe succeeds: closed again, traffic flows.
      now += 5_000;
      orders.setBehaviour(ok());
      assert.equal((await egress.call('orders')).status, 200);
      assert.equal(await egress.metric('mesh_circuit_breaker_open', { service: 'orders' }), 0);
      for (let i = 0; i < 3; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.equal(orders.count(), 8);
    });

    it('refuses calls beyond maxRequests in flight', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(hang);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: { endpoints: [orders.url], retry: { attempts: 1 }, circuitBreaker: { maxRequests: 2 } },
        },
      });
      const pending = [
        egress.call('orders').catch(() => undefined),
        egress.call('orders').catch(() => undefined),
      ];
      await waitFor(() => orders.count() === 2, { what: 'two requests in flight' });
      const refused = await egress.call('orders');
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['x-mesh-error'], 'circuit-open');
      assert.equal(orders.count(), 2);
      await orders.stop();
      await Promise.all(pending);
    });
  });

  describe('outlier detection', () => {
    it('ejects a failing endpoint and readmits it after the ejection time', async () => {
      const ups = await upstreams(3);
      ups[0].setBehaviour(fail(500));
      let now = 1_000_000;
      const egress = await startTestEgress(
        cleanup,
        {
          services: {
            orders: {
              endpoints: ups.map((u) => u.url),
              retry: { attempts: 1 },
              circuitBreaker: { consecutiveFailures: 0 },
              outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 10_000, maxEjectedPercent: 34 },
            },
          },
        },
        { now: () => now },
      );
      for (let i = 0; i < 12; i += 1) await egress.call('orders');
      assert.equal(ups[0].count(), 2, 'up-0 is out after its second failure');
      assert.equal(await egress.metric('mesh_outlier_ejections_total', { service: 'orders' }), 1);

      now += 10_000;
      ups[0].setBehaviour(ok());
      for (let i = 0; i < 6; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.equal(ups[0].count(), 4, 'readmitted, it gets its share again');
    });

    it('ejects an endpoint by its failure percentage, which never fails twice in a row', async () => {
      const [flaky] = await upstreams(1);
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: [flaky.url],
            retry: { attempts: 1 },
            outlierDetection: {
              consecutiveFailures: 0,
              failurePercent: 50,
              failurePercentMinRequests: 6,
              maxEjectedPercent: 100,
            },
          },
        },
      });
      for (let i = 0; i < 6; i += 1) {
        flaky.setBehaviour(i % 2 === 0 ? ok() : fail(500));
        assert.equal((await egress.call('orders')).status, i % 2 === 0 ? 200 : 500);
      }
      assert.equal(await egress.metric('mesh_outlier_ejections_total', { service: 'orders' }), 1);
      const res = await egress.call('orders');
      assert.equal(res.status, 503);
      assert.equal(res.headers['x-mesh-error'], 'no-healthy-upstream');
      assert.equal(flaky.count(), 6);
    });

    it('answers 503 no-healthy-upstream once every endpoint is ejected', async () => {
      const [orders] = await upstreams(1);
      orders.setBehaviour(fail(502));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: [orders.url],
            retry: { attempts: 1 },
            circuitBreaker: { consecutiveFailures: 0 },
            outlierDetection: { consecutiveFailures: 1, maxEjectedPercent: 100 },
          },
        },
      });
      assert.equal((await egress.call('orders')).status, 502);
      const res = await egress.call('orders');
      assert.equal(res.status, 503);
      assert.equal(res.headers['x-mesh-error'], 'no-healthy-upstream');
      assert.equal(orders.count(), 1);
    });
  });

  describe('active health checks', () => {
    const traffic = (upstream: TestUpstream) => upstream.count((r) => r.url !== '/healthz');

    it('takes an endpoint failing its checks out of load balancing and brings it back when they pass', async () => {
      const ups = await upstreams(2);
      // Up, and answering calls, but its health check says it should get none (a pod draining).
      ups[1].setPathBehaviour('/healthz', fail(503));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: ups.map((u) => u.url),
            // Outlier detection off: only the health checks can take an endpoint out.
            outlierDetection: { consecutiveFailures: 0 },
            healthCheck: { path: '/healthz', intervalMs: 20, unhealthyThreshold: 2, healthyThreshold: 2 },
          },
        },
      });
      const unhealthy = () => egress.metric('mesh_upstream_unhealthy_endpoints', { service: 'orders' });
      await waitFor(async () => (await unhealthy()) === 1, { what: 'up-1 taken out' });
      assert.ok(ups[1].count((r) => r.url === '/healthz') >= 2, 'two failed checks in a row before that');
      const check = ups[1].requests.find((r) => r.url === '/healthz')!;
      assert.equal(check.method, 'GET');
      assert.equal(check.headers['user-agent'], 'mesh-sidecar-health-check');
      assert.equal(check.headers.host, `127.0.0.1:${ups[1].port}`);
      const before = traffic(ups[1]);
      for (let i = 0; i < 10; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.equal(traffic(ups[1]), before, 'no call went to the unhealthy endpoint');
      const status = egress.egress.status() as unknown as {
        services: { unhealthy: number; groups: { endpoints: { origin: string; healthy: boolean }[] }[] }[];
      };
      assert.equal(status.services[0].unhealthy, 1);
      assert.deepEqual(
        status.services[0].groups[0].endpoints.map((e) => e.healthy),
        [true, false],
      );
      assert.ok((await egress.metric('mesh_upstream_health_checks_total', { result: 'failed' })) >= 2);

      ups[1].setPathBehaviour('/healthz', ok());
      await waitFor(async () => (await unhealthy()) === 0, { what: 'up-1 back' });
      const back = traffic(ups[1]);
      for (let i = 0; i < 10; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.equal(traffic(ups[1]) - back, 5, 'round robin gives it its share again');
    });

    it('counts a check without an answer within timeoutMs as failed, and uses every endpoint when none is healthy', async () => {
      const ups = await upstreams(2);
      ups[0].setPathBehaviour('/healthz', hang);
      ups[1].setPathBehaviour('/healthz', fail(500));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: ups.map((u) => u.url),
            outlierDetection: { consecutiveFailures: 0 },
            healthCheck: { path: '/healthz', intervalMs: 20, timeoutMs: 50, unhealthyThreshold: 1 },
          },
        },
      });
      await waitFor(
        async () => (await egress.metric('mesh_upstream_unhealthy_endpoints', { service: 'orders' })) === 2,
        { what: 'both endpoints unhealthy' },
      );
      // Panic mode: checks failing everywhere are more likely wrong than every endpoint down.
      for (let i = 0; i < 4; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.deepEqual([traffic(ups[0]), traffic(ups[1])], [2, 2]);
    });

    it('checks a management port of each endpoint with the configured headers', async () => {
      // Two pods on one port, on two loopback addresses, each with its health on a second port.
      const pods: TestUpstream[] = [];
      const health: TestUpstream[] = [];
      for (const [index, host] of ['127.0.0.1', '127.0.0.2'].entries()) {
        const pod = await new TestUpstream({ name: `pod-${index + 1}`, host, port: pods[0]?.port }).start();
        const probe = await new TestUpstream({
          name: `health-${index + 1}`,
          host,
          port: health[0]?.port,
        }).start();
        cleanup.defer(() => pod.stop());
        cleanup.defer(() => probe.stop());
        pods.push(pod);
        health.push(probe);
      }
      health[1].setPathBehaviour('/ready', fail(503));
      const egress = await startTestEgress(cleanup, {
        services: {
          orders: {
            endpoints: pods.map((pod) => pod.url),
            outlierDetection: { consecutiveFailures: 0 },
            healthCheck: {
              path: '/ready',
              port: health[0].port,
              headers: { 'X-Probe-Token': 'secret', Host: 'orders.internal' },
              intervalMs: 20,
              unhealthyThreshold: 1,
            },
          },
        },
      });
      await waitFor(
        async () => (await egress.metric('mesh_upstream_unhealthy_endpoints', { service: 'orders' })) === 1,
        { what: 'pod-2 taken out by its management port' },
      );
      const check = health[0].requests.find((r) => r.url === '/ready')!;
      assert.equal(check.headers['x-probe-token'], 'secret');
      assert.equal(check.headers.host, 'orders.internal');
      assert.equal(check.headers['user-agent'], 'mesh-sidecar-health-check');
      for (let i = 0; i < 4; i += 1) assert.equal((await egress.call('orders')).status, 200);
      assert.deepEqual(
        pods.map((pod) => pod.count((r) => r.url !== '/ready')),
        [4, 0],
      );
      assert.equal(pods[0].count((r) => r.url === '/ready') + pods[1].count((r) => r.url === '/ready'), 0);
    });
  });

  describe('DNS discovery', () => {
    it('follows the answers of the resolver, adding and removing endpoints without cutting requests in flight', async () => {
      // Three upstreams on one port, on three loopback addresses, as a headless Service's pods look.
      const first = await new TestUpstream({ name: 'pod-1', host: '127.0.0.1' }).start();
      cleanup.defer(() => first.stop());
      const pods = [first];
      for (const [index, host] of ['127.0.0.2', '127.0.0.3'].entries()) {
        const pod = await new TestUpstream({ name: `pod-${index + 2}`, host, port: first.port }).start();
        cleanup.defer(() => pod.stop());
        pods.push(pod);
      }
      let answer = ['127.0.0.1', '127.0.0.2'];
      let dnsDown = false;
      const lookups: string[] = [];
      const egress = await startTestEgress(
        cleanup,
        {
          services: {
            orders: {
              dns: { name: 'orders.shop.svc.cluster.local', port: first.port, intervalMs: 20 },
              retry: { attempts: 1 },
            },
          },
        },
        {
          resolve: (name) => {
            lookups.push(name);
            return dnsDown ? Promise.reject(new Error(`queryA ENOTFOUND ${name}`)) : Promise.resolve(answer);
          },
        },
      );
      const service = egress.egress.service('orders')!;
      const owners = async (count: number) => {
        const seen = new Set<string>();
        for (let i = 0; i < count; i += 1) {
          const res = await egress.call('orders');
          assert.equal(res.status, 200);
          seen.add((res.json() as { upstream: string }).upstream);
        }
        return [...seen].sort();
      };
      assert.deepEqual(await owners(4), ['pod-1', 'pod-2']);
      assert.equal(lookups[0], 'orders.shop.svc.cluster.local');

      // A request in flight on pod-1 when pod-1 leaves the answer still completes.
      pods[0].script(slow(300));
      const inFlight = egress.call('orders');
      await waitFor(() => pods[0].active === 1, { what: 'the slow request on pod-1' });
      answer = ['127.0.0.2', '127.0.0.3'];
      await waitFor(
        () =>
          service.endpoints.all.map((e) => e.origin).join() ===
          `http://127.0.0.2:${first.port},http://127.0.0.3:${first.port}`,
        {
          what: 'the endpoint set to follow DNS',
        },
      );
      assert.equal((await inFlight).status, 200);
      assert.deepEqual(await owners(4), ['pod-2', 'pod-3']);

      // A failed lookup keeps what was known.
      dnsDown = true;
      const lookupsBefore = lookups.length;
      await waitFor(() => lookups.length > lookupsBefore + 1, { what: 'failed lookups' });
      assert.deepEqual(await owners(4), ['pod-2', 'pod-3']);
    });
  });

  describe('tracing', () => {
    it('makes a CLIENT span per attempt under the egress SERVER span, continuing the caller trace', async () => {
      const ups = await upstreams(2);
      ups[0].setBehaviour(reset);
      const egress = await startTestEgress(cleanup, {
        services: { orders: { endpoints: ups.map((u) => u.url), retry: { attempts: 2, baseBackoffMs: 0 } } },
      });
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const res = await egress.call('orders', '/t', {
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      });
      assert.equal(res.status, 200);
      const spans = (await egress.spans()).filter((s) => s.spanContext().traceId === traceId);
      const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
      const clients = spans.filter((s) => s.kind === SpanKind.CLIENT);
      assert.ok(server);
      assert.equal(clients.length, 2);
      for (const client of clients)
        assert.equal(client.parentSpanContext?.spanId, server.spanContext().spanId);
      assert.equal(clients.filter((c) => c.attributes['http.request.resend_count'] === 1).length, 1);
      // The upstream that answered got the trace context of its own attempt span.
      const answered = ups[1].requests[0].headers.traceparent as string;
      const second = clients.find((c) => c.attributes['http.response.status_code'] === 200)!;
      assert.equal(answered.split('-')[2], second.spanContext().spanId);
    });

    it('with tracing off passes the trace headers to the upstream unchanged and makes no span', async () => {
      const [orders] = await upstreams(1);
      const egress = await startTestEgress(
        cleanup,
        { services: { orders: { endpoints: [orders.url] } } },
        { tracing: false },
      );
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const res = await egress.call('orders', '/t', {
        headers: { traceparent, tracestate: 'vendor=1', baggage: 'user=alice' },
      });
      assert.equal(res.status, 200);
      const received = orders.requests[0].headers;
      assert.equal(received.traceparent, traceparent);
      assert.equal(received.tracestate, 'vendor=1');
      assert.equal(received.baggage, 'user=alice');
      assert.deepEqual(await egress.spans(), []);
    });
  });

  it('keeps the upstream set healthy enough to answer after an endpoint came back', async () => {
    const [orders] = await upstreams(1);
    const egress = await startTestEgress(cleanup, {
      services: { orders: { endpoints: [orders.url], retry: { attempts: 1 } } },
    });
    orders.script(ok());
    assert.equal((await egress.call('orders')).status, 200);
    await orders.stop();
    assert.equal((await egress.call('orders')).status, 502);
    await orders.start();
    assert.equal((await egress.call('orders')).status, 200);
  });
});

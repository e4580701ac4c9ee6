import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import { startTestEgress } from './helpers/upstream-egress.js';
import { fail, hang, ok, reset, startUpstreams, type TestUpstream } from './helpers/upstream.js';
import { CleanupStack } from './helpers/wait.js';

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

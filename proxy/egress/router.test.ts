import assert from 'node:assert/strict';
import { hostName, Router } from './router.js';

describe('egress Router', () => {
  const router = new Router(
    [
      { name: 'orders', namespace: 'shop' },
      { name: 'users', namespace: undefined },
    ],
    [
      { prefix: '/api/', service: 'users', stripPrefix: true },
      { prefix: '/api/orders', service: 'orders', stripPrefix: false },
    ],
  );

  it('normalises the Host header', () => {
    assert.equal(hostName('Orders.Shop:8080'), 'orders.shop');
    assert.equal(hostName('orders.shop.svc.cluster.local.'), 'orders.shop.svc.cluster.local');
    assert.equal(hostName('[::1]:15001'), '[::1]');
    assert.equal(hostName(undefined), '');
  });

  it('matches short and namespaced host forms', () => {
    for (const host of [
      'orders',
      'orders.shop',
      'orders.shop.svc',
      'orders.shop.svc.cluster.local',
      'ORDERS:1',
    ]) {
      assert.equal(router.route(host, '/').service, 'orders', host);
    }
    assert.equal(router.serviceForHost('orders.other'), undefined);
    assert.equal(router.serviceForHost('orders.shop.example.com'), undefined);
    assert.equal(router.serviceForHost('users.any.svc'), 'users');
  });

  it('falls back to the longest path prefix at segment boundaries, then to nothing', () => {
    assert.deepEqual(router.route('localhost', '/api/orders/1?x'), {
      service: 'orders',
      path: '/api/orders/1?x',
      route: 'prefix:/api/orders',
    });
    assert.deepEqual(router.route('localhost', '/api/u/2'), {
      service: 'users',
      path: '/u/2',
      route: 'prefix:/api',
    });
    assert.deepEqual(router.route('localhost', '/api'), {
      service: 'users',
      path: '/',
      route: 'prefix:/api',
    });
    assert.deepEqual(router.route('localhost', '/apix'), { service: undefined, host: 'localhost' });
  });

  it('sends what nothing claims to the catch-all service when there is one', () => {
    const zero = new Router([], [], 'upstream');
    assert.deepEqual(zero.route('127.0.0.1:15001', '/hello'), {
      service: 'upstream',
      path: '/hello',
      route: 'upstream',
    });
  });
});

import assert from 'node:assert/strict';
import { Router } from './router.js';
import { buildServiceIdRouter } from './service-id.js';

describe('egress service-id addressing', () => {
  const services = [
    { name: 'orders', namespace: undefined, endpoints: ['http://10.0.0.1:8080'] },
    { name: 'users', namespace: undefined, endpoints: ['http://10.0.0.2:8080/'] },
  ];
  const ids = buildServiceIdRouter(
    {
      pathPrefixes: { '/v1/users/': 'users', '/v1': 'orders' },
      pathMethods: { '/v1/pets/{petId}@get': 'users' },
    },
    services,
  );
  const router = new Router(services, [], undefined, ids);

  it('routes by the service_id and service_url headers before Host', () => {
    assert.deepEqual(router.route('users', '/x', { service_id: 'Orders' }, 'GET'), {
      service: 'orders',
      route: 'service_id:orders',
      path: '/x',
    });
    assert.equal(
      router.route('x', '/x', { service_url: 'http://10.0.0.2:8080/a/b' }, 'GET').service,
      'users',
    );
    assert.equal(router.route('x', '/x', { service_id: 'nope' }, 'GET').service, undefined);
    assert.equal(router.route('x', '/x', { service_url: 'not a url' }, 'GET').service, undefined);
    assert.equal(router.route('users', '/v1/a', {}, 'GET').service, 'users');
  });

  it('maps path@method templates, then the longest path prefix', () => {
    assert.equal(router.route('x', '/v1/pets/7?q=1', {}, 'GET').service, 'users');
    assert.equal(router.route('x', '/v1/pets/7', {}, 'POST').service, 'orders');
    assert.equal(router.route('x', '/v1/users/1', {}, 'GET').service, 'users');
    assert.equal(router.route('x', '/v1users', {}, 'GET').service, undefined);
    assert.equal(router.route('x', '/v2', {}, 'GET').service, undefined);
  });

  it('is absent when not configured and refuses unknown services', () => {
    assert.equal(buildServiceIdRouter(undefined, services), undefined);
    assert.throws(() => buildServiceIdRouter({ pathPrefixes: { '/a': 'ghost' } }, services), /ghost/);
    assert.throws(() => buildServiceIdRouter({ pathMethods: { '/a': 'orders' } }, services), /path@method/);
  });
});

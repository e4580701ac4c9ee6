import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createMetrics } from '../../services/runtime/metrics.js';
import type { IngressContext } from './context.js';
import { buildRoutePolicies } from './route-policies.js';

const metrics = createMetrics(new Registry());
const resolvePath = (file: string) => file;

describe('ingress route policies', () => {
  it('compiles to nothing when nothing is configured (no per-request step)', async () => {
    assert.equal(await buildRoutePolicies([], undefined, resolvePath, metrics), undefined);
    const authOnly = await buildRoutePolicies(
      [{ prefix: '/a', auth: 'apiKey', apiKey: { header: 'x-api-key', keys: ['k'] } }],
      undefined,
      resolvePath,
      metrics,
    );
    assert.equal(authOnly?.pre, undefined, 'auth alone adds no pre step');
    assert.notEqual(authOnly?.auth, undefined);
  });

  it('chooses the auth of the longest prefix, JWT by default, and edits headers after it', async () => {
    const calls: string[] = [];
    const jwt = { authenticate: () => void calls.push('jwt') };
    const policies = await buildRoutePolicies(
      [
        { prefix: '/', headers: { request: { set: { 'x-a': '1' }, add: {}, remove: ['authorization'] } } },
        { prefix: '/open/', auth: 'none' },
      ],
      jwt,
      resolvePath,
      metrics,
    );
    const ctx = (path: string) =>
      ({ path, req: { headers: { authorization: 'Bearer t' } } }) as unknown as IngressContext;
    const root = ctx('/x');
    await policies!.auth!.authenticate(root);
    assert.deepEqual(calls, ['jwt']);
    assert.deepEqual(root.req.headers, { 'x-a': '1' });
    await policies!.auth!.authenticate(ctx('/open/x'));
    assert.deepEqual(calls, ['jwt']);
  });

  it('refuses bad routes with a pointer', async () => {
    await assert.rejects(
      buildRoutePolicies(
        [{ prefix: '/a' }, { prefix: '/b', deny: ['bogus'] }],
        undefined,
        resolvePath,
        metrics,
      ),
      (err: Error & { pointer?: string }) => err.pointer === '/ingress/routes/1' && /bogus/.test(err.message),
    );
    await assert.rejects(
      buildRoutePolicies([{ prefix: '/a', auth: 'jwt' }], undefined, resolvePath, metrics),
      /ingress.jwt/,
    );
  });
});

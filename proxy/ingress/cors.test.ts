import assert from 'node:assert/strict';
import type { IngressContext } from './context.js';
import { CorsPolicy } from './cors.js';

function fakeCtx(method: string, headers: Record<string, string>) {
  const set: Record<string, string> = {};
  let ended = false;
  const res = {
    statusCode: 200,
    setHeader: (name: string, value: string) => (set[name] = value),
    end: () => (ended = true),
  };
  const ctx = { method, req: { headers, resume: () => undefined }, res } as unknown as IngressContext;
  return { ctx, set, res, ended: () => ended };
}

describe('ingress CORS', () => {
  const cors = new CorsPolicy({
    allowOrigins: ['https://app.example'],
    allowMethods: ['get', 'POST'],
    exposeHeaders: ['x-request-id'],
    allowCredentials: true,
    maxAgeSeconds: 60,
  });

  it('answers a preflight from an allowed origin', () => {
    const { ctx, set, res, ended } = fakeCtx('OPTIONS', {
      origin: 'https://APP.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    assert.equal(cors.handle(ctx), true);
    assert.equal(res.statusCode, 204);
    assert.equal(ended(), true);
    assert.equal(set['access-control-allow-origin'], 'https://APP.example');
    assert.equal(set['access-control-allow-methods'], 'GET, POST');
    assert.equal(set['access-control-allow-headers'], 'content-type');
    assert.equal(set['access-control-allow-credentials'], 'true');
    assert.equal(set['access-control-max-age'], '60');
  });

  it('marks simple requests and ignores other origins', () => {
    const simple = fakeCtx('GET', { origin: 'https://app.example' });
    assert.equal(cors.handle(simple.ctx), false);
    assert.equal(simple.set['access-control-expose-headers'], 'x-request-id');
    const foreign = fakeCtx('OPTIONS', {
      origin: 'https://evil.example',
      'access-control-request-method': 'GET',
    });
    assert.equal(cors.handle(foreign.ctx), false);
    assert.deepEqual(foreign.set, {});
    const none = fakeCtx('GET', {});
    assert.equal(cors.handle(none.ctx), false);
  });

  it('answers * without credentials', () => {
    const any = new CorsPolicy({
      allowOrigins: ['*'],
      allowMethods: ['GET'],
      exposeHeaders: [],
      allowCredentials: false,
      maxAgeSeconds: 0,
    });
    const { ctx, set } = fakeCtx('GET', { origin: 'https://x.example' });
    any.handle(ctx);
    assert.equal(set['access-control-allow-origin'], '*');
  });
});

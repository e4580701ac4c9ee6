import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createMetrics } from '../../services/runtime/metrics.js';
import type { IngressContext } from './context.js';
import { FaultInjector } from './fault-injection.js';

function fakeCtx() {
  const written: { status?: number; body?: string } = {};
  const ctx = {
    path: '/f',
    req: { resume: () => undefined },
    res: {
      writeHead: (status: number) => (written.status = status),
      end: (body: string) => (written.body = body),
    },
  } as unknown as IngressContext;
  return { ctx, written };
}

describe('ingress fault injection', () => {
  it('aborts when the draw is under abortPercent, delays when under delayPercent', async () => {
    const metrics = createMetrics(new Registry());
    const draws = [0.1, 0.9, 0.05, 0.9, 0.9];
    const injector = new FaultInjector(
      { abortPercent: 20, abortStatus: 418, delayPercent: 10, delayMs: 1 },
      '/f',
      metrics,
      () => draws.shift()!,
    );
    const aborted = fakeCtx();
    assert.equal(await injector.apply(aborted.ctx), true);
    assert.equal(aborted.written.status, 418);
    const delayed = fakeCtx();
    assert.equal(await injector.apply(delayed.ctx), false); // 0.9: no abort; 0.05: delay
    const passed = fakeCtx();
    assert.equal(await injector.apply(passed.ctx), false);
    assert.equal(passed.written.status, undefined);
    const values = (await metrics.ingressInjectedFaults.get()).values;
    assert.deepEqual(values.map((v) => [v.labels.kind, v.value]).sort(), [
      ['abort', 1],
      ['delay', 1],
    ]);
  });

  it('is inactive with zero percentages', () => {
    const metrics = createMetrics(new Registry());
    const injector = new FaultInjector(
      { abortPercent: 0, abortStatus: 503, delayPercent: 0, delayMs: 5 },
      '/',
      metrics,
    );
    assert.equal(injector.active, false);
  });
});

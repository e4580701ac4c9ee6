/**
 * Fault injection for resilience testing in NON-PRODUCTION environments (Envoy's fault filter, the
 * light-mesh chaos handler): a configured share of a route's requests is aborted with a status, and
 * a share is delayed before it is forwarded. Draws are independent per request.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { REQUEST_ID_HEADER } from '../../services/runtime/http.js';
import type { IngressContext } from './context.js';

export interface FaultOptions {
  readonly delayPercent: number;
  readonly delayMs: number;
  readonly abortPercent: number;
  readonly abortStatus: number;
}

export class FaultInjector {
  constructor(
    private readonly options: FaultOptions,
    private readonly prefix: string,
    private readonly metrics: MeshMetrics,
    private readonly random: () => number = Math.random,
  ) {}

  get active(): boolean {
    return (this.options.delayPercent > 0 && this.options.delayMs > 0) || this.options.abortPercent > 0;
  }

  /** True when the request was aborted (answered); otherwise resolves after any injected delay. */
  async apply(ctx: IngressContext): Promise<boolean> {
    const { abortPercent, abortStatus, delayPercent, delayMs } = this.options;
    if (abortPercent > 0 && this.random() * 100 < abortPercent) {
      this.metrics.ingressInjectedFaults.inc({ prefix: this.prefix, kind: 'abort' });
      const body = JSON.stringify({
        type: 'about:blank',
        title: 'Injected fault',
        status: abortStatus,
        detail: 'fault injection aborted this request (non-production testing)',
        instance: ctx.path,
      });
      ctx.req.resume();
      ctx.res.writeHead(abortStatus, {
        'content-type': 'application/problem+json',
        'content-length': Buffer.byteLength(body),
        'x-mesh-error': 'fault-injected',
        [REQUEST_ID_HEADER]: ctx.requestId,
      });
      ctx.res.end(body);
      return true;
    }
    if (delayPercent > 0 && delayMs > 0 && this.random() * 100 < delayPercent) {
      this.metrics.ingressInjectedFaults.inc({ prefix: this.prefix, kind: 'delay' });
      await sleep(delayMs);
    }
    return false;
  }
}

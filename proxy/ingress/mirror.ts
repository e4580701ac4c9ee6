/**
 * Traffic mirroring: a configured share of a route's requests is copied to a shadow upstream once
 * the real response has finished, so the copy can never delay or fail the real request. The body is
 * teed as the parser hands it over (the request's own consumer is untouched), up to `maxBodyBytes`;
 * a larger body, one not received completely, or a request the sidecar answered itself
 * (problem+json) is not copied (`skipped`). Shadow answers are discarded.
 */
import { Pool } from 'undici';
import { hasBody } from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { withoutHopByHop } from '../shared/headers.js';
import type { IngressContext } from './context.js';

export interface MirrorOptions {
  readonly target: string;
  readonly percent: number;
  readonly maxBodyBytes: number;
  readonly timeoutMs: number;
}

export class Mirror {
  private readonly pool: Pool;

  constructor(
    private readonly options: MirrorOptions,
    private readonly prefix: string,
    private readonly metrics: MeshMetrics,
    private readonly random: () => number = Math.random,
  ) {
    this.pool = new Pool(new URL(options.target).origin, {
      connections: 16,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connectTimeout: Math.min(options.timeoutMs, 2_000),
    });
  }

  /**
   * Decides now whether this request is copied; the copy leaves after the real response. Must run
   * in the request event (before the first body chunk is parsed) for the tee to see the whole body.
   */
  select(ctx: IngressContext): void {
    if (!(this.random() * 100 < this.options.percent)) return;
    const { req, res } = ctx;
    const limit = this.options.maxBodyBytes;
    const length = Number(req.headers['content-length'] ?? 0);
    const framed = hasBody(req);
    if (framed && !(length <= limit)) {
      this.skip();
      return;
    }
    let tee: Buffer[] | undefined = framed ? [] : undefined;
    if (framed) {
      let size = 0;
      // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the request as `this`
      const push = req.push;
      req.push = function (this: typeof req, chunk: unknown, encoding?: BufferEncoding): boolean {
        if (tee !== undefined && Buffer.isBuffer(chunk)) {
          size += chunk.length;
          if (size > limit) tee = undefined;
          else tee.push(chunk);
        }
        return push.call(this, chunk, encoding);
      };
    }
    const method = ctx.method;
    const path = req.url ?? '/';
    const headers = withoutHopByHop(req.headers) as Record<string, string>;
    delete headers.host;
    delete headers['content-length'];
    headers['x-mesh-mirror'] = '1';
    headers['x-request-id'] = ctx.requestId;
    res.once('close', () => {
      const refused = String(res.getHeader('content-type') ?? '').startsWith('application/problem+json');
      if (refused || (framed && (tee === undefined || !req.complete))) {
        this.skip();
        return;
      }
      this.send(method, path, headers, tee === undefined ? null : Buffer.concat(tee));
    });
  }

  private skip(): void {
    this.metrics.ingressMirroredRequests.inc({ prefix: this.prefix, result: 'skipped' });
  }

  private send(method: string, path: string, headers: Record<string, string>, body: Buffer | null): void {
    this.pool.request({ method, path, headers, body }).then(
      (answer) => {
        answer.body.resume();
        answer.body.on('error', () => undefined);
        this.metrics.ingressMirroredRequests.inc({ prefix: this.prefix, result: 'sent' });
      },
      () => this.metrics.ingressMirroredRequests.inc({ prefix: this.prefix, result: 'failed' }),
    );
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

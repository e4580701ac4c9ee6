/**
 * Request/response audit log of the ingress, on its own stream (a file, or stdout/stderr) apart
 * from the operational log: one JSON line per request with method, path, status, duration, client
 * address, subject (`sub` of a verified token), correlation id and request id. Bodies are captured
 * only when `captureBody` is on, and then at most `maxBodyBytes` of each.
 */
import { pino, type Logger } from 'pino';
import { responseCompleted } from '../../services/runtime/http.js';
import { createLogger } from '../../services/runtime/logging.js';
import type { IngressContext } from './context.js';

export interface AuditOptions {
  readonly destination: string;
  readonly captureBody: boolean;
  readonly maxBodyBytes: number;
}

function destinationStream(destination: string) {
  if (destination === 'stdout') return pino.destination({ fd: 1, sync: false });
  if (destination === 'stderr') return pino.destination({ fd: 2, sync: false });
  return pino.destination({ dest: destination, mkdir: true, sync: false });
}

function bounded(chunks: Buffer[], limit: number): string {
  const all = Buffer.concat(chunks);
  return all.subarray(0, limit).toString('utf8');
}

export class AuditLog {
  readonly logger: Logger;

  constructor(
    private readonly options: AuditOptions,
    logger?: Logger,
  ) {
    this.logger =
      logger ??
      createLogger({
        level: 'info',
        base: { stream: 'audit' },
        destination: destinationStream(options.destination),
      });
  }

  /** Registers the request; its line is written when the response closes. */
  record(ctx: IngressContext): void {
    const started = performance.now();
    const { req, res } = ctx;
    let responseChunks: Buffer[] | undefined;
    if (this.options.captureBody) {
      const chunks: Buffer[] = [];
      responseChunks = chunks;
      let size = 0;
      const limit = this.options.maxBodyBytes;
      const keep = (chunk: unknown) => {
        if (size >= limit || chunk === undefined || chunk === null || typeof chunk === 'function') return;
        const buffer = Buffer.isBuffer(chunk)
          ? chunk
          : typeof chunk === 'string'
            ? Buffer.from(chunk)
            : chunk instanceof Uint8Array
              ? Buffer.from(chunk)
              : undefined;
        if (buffer === undefined) return;
        chunks.push(buffer.subarray(0, limit - size));
        size += Math.min(buffer.length, limit - size);
      };
      const write = res.write.bind(res) as (...args: unknown[]) => boolean;
      const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
      res.write = ((chunk: unknown, ...rest: unknown[]) => {
        keep(chunk);
        return write(chunk, ...rest);
      }) as typeof res.write;
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        keep(chunk);
        return end(chunk, ...rest);
      }) as typeof res.end;
    }
    res.once('close', () => {
      const correlation = req.headers['x-correlation-id'];
      const entry: Record<string, unknown> = {
        method: ctx.method,
        path: ctx.path,
        route: ctx.route,
        status: res.statusCode,
        completed: responseCompleted(res),
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
        client: ctx.clientAddress,
        subject: typeof ctx.claims?.sub === 'string' ? ctx.claims.sub : undefined,
        correlationId: (Array.isArray(correlation) ? correlation[0] : correlation) ?? ctx.requestId,
        requestId: ctx.requestId,
      };
      if (this.options.captureBody) {
        if (Buffer.isBuffer(ctx.body)) entry.requestBody = bounded([ctx.body], this.options.maxBodyBytes);
        entry.responseBody = bounded(responseChunks ?? [], this.options.maxBodyBytes);
      }
      this.logger.info(entry, 'audit');
    });
  }

  close(): void {
    this.logger.flush();
  }
}

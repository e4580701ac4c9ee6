/**
 * One HTTP attempt to the app: POST a body, read the answer (bounded), classify failures into
 * "the app is down" (nothing was sent: the partition should pause) and "this attempt failed"
 * (timeouts, resets: retried like a 5xx).
 */
import { Pool } from 'undici';
import type { AppAnswer } from './outcome.js';

export type AttemptResult =
  | ({ readonly kind: 'answer'; readonly retryAfterMs?: number | undefined } & AppAnswer)
  | { readonly kind: 'app-down'; readonly error: string }
  | { readonly kind: 'failed'; readonly error: string };

/** Errors that mean no connection could be made: the request never reached the app. */
const APP_DOWN_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The most of an answer's body that is read; the verdict is a tiny JSON object. */
const MAX_ANSWER_BYTES = 1 << 20;

function errorCode(err: unknown): string | undefined {
  for (
    let current = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    current && depth < 4;
    depth++
  ) {
    if (typeof current.code === 'string') return current.code;
    current = current.cause as typeof current;
  }
  return undefined;
}

/** Seconds or an HTTP date, as milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1_000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export class AppClient {
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(target: string, connections = 64) {
    const url = new URL(target);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, { connections, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /** `path` joined onto the target's own path (a target of `http://app/base` and `/events` → `/base/events`). */
  pathFor(path: string): string {
    return `${this.basePath}${path}`;
  }

  async post(
    path: string,
    body: string | Buffer,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<AttemptResult> {
    try {
      // undici's own timers (no AbortSignal per request): the answer's headers within
      // `timeoutMs`, then its body within `timeoutMs` of inactivity.
      const response = await this.pool.request({
        method: 'POST',
        path,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const length = Number(response.headers['content-length'] ?? 0);
      let text = '';
      if (length > MAX_ANSWER_BYTES) await response.body.dump();
      else text = await response.body.text();
      const contentType = response.headers['content-type'];
      return {
        kind: 'answer',
        status: response.statusCode,
        body: text.length > MAX_ANSWER_BYTES ? '' : text,
        contentType: Array.isArray(contentType) ? contentType[0] : contentType,
        retryAfterMs: parseRetryAfter(response.headers['retry-after']),
      };
    } catch (err) {
      const code = errorCode(err);
      const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
      const message = timedOut
        ? `timeout after ${timeoutMs} ms`
        : `${code ?? 'error'}: ${(err as Error).message}`;
      if (code !== undefined && APP_DOWN_CODES.has(code)) return { kind: 'app-down', error: message };
      return { kind: 'failed', error: message };
    }
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => undefined);
  }

  async destroy(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }
}

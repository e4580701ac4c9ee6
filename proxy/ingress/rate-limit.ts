import { MeshError } from '../../services/runtime/errors.js';
import type { Config } from '../../services/runtime/config.js';

type IngressConfig = Config['ingress'];
import type { IngressContext } from './context.js';

type RuleConfig = IngressConfig['rateLimits'][number];

/** When a rule is checked: before auth (address, header keys) or after it (the verified subject). */
export type RatePhase = 'before-auth' | 'after-auth';

interface Rule {
  readonly id: string;
  readonly name: string;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly key:
    { readonly from: 'address' | 'subject' } | { readonly from: 'header'; readonly header: string };
  readonly phase: RatePhase;
  readonly rate: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Buckets kept before idle (full) ones are swept. */
const SWEEP_ABOVE = 10_000;

function clientAddress(ctx: IngressContext): string {
  const address = ctx.clientAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * Token buckets per rule, route and client key. A request passes when every matching rule has a
 * token; the answer carries `RateLimit-Limit/Remaining/Reset` and `RateLimit-Policy` of the tightest
 * rule, and a refusal is 429 with `Retry-After`.
 */
export class RateLimiter {
  private readonly rules: readonly Rule[];
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    rules: readonly RuleConfig[],
    private readonly now: () => number = () => performance.now(),
  ) {
    this.rules = rules.map((rule, index) => {
      const key: Rule['key'] = rule.key.startsWith('header:')
        ? { from: 'header', header: rule.key.slice('header:'.length).toLowerCase() }
        : { from: rule.key as 'address' | 'subject' };
      return {
        id: String(index),
        name: rule.name ?? `rule-${index}`,
        method: rule.method?.toUpperCase(),
        path: rule.path,
        key,
        phase: key.from === 'subject' ? 'after-auth' : 'before-auth',
        rate: rule.requestsPerSecond,
        burst: rule.burst ?? Math.max(1, Math.ceil(rule.requestsPerSecond)),
      };
    });
  }

  get size(): number {
    return this.buckets.size;
  }

  /** The rate-limit step for one phase: throws a 429 MeshError, or sets the RateLimit-* headers. */
  check(ctx: IngressContext, phase: RatePhase): void {
    let tightest: { rule: Rule; bucket: Bucket } | undefined;
    for (const rule of this.rules) {
      if (rule.phase !== phase) continue;
      if (rule.method !== undefined && rule.method !== ctx.method) continue;
      if (rule.path !== undefined && rule.path !== (ctx.operation ? ctx.route : ctx.path)) continue;
      const bucket = this.bucket(`${rule.id}\u0000${ctx.route}\u0000${this.clientKey(rule, ctx)}`, rule);
      if (bucket.tokens < 1) {
        const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / rule.rate));
        throw new MeshError(
          'MESH_RATE_LIMITED',
          `rate limit "${rule.name}" exceeded; retry in ${retryAfter} s`,
          {
            headers: { 'retry-after': String(retryAfter), ...this.headers(rule, bucket, retryAfter) },
          },
        );
      }
      bucket.tokens -= 1;
      if (!tightest || bucket.tokens / rule.burst < tightest.bucket.tokens / tightest.rule.burst) {
        tightest = { rule, bucket };
      }
    }
    if (tightest) {
      const { rule, bucket } = tightest;
      const reset = Math.ceil((rule.burst - bucket.tokens) / rule.rate);
      for (const [name, value] of Object.entries(this.headers(rule, bucket, reset)))
        ctx.res.setHeader(name, value);
    }
  }

  private headers(rule: Rule, bucket: Bucket, resetSeconds: number): Record<string, string> {
    return {
      'ratelimit-limit': String(rule.burst),
      'ratelimit-remaining': String(Math.max(0, Math.floor(bucket.tokens))),
      'ratelimit-reset': String(resetSeconds),
      'ratelimit-policy': `${rule.burst};w=${Math.max(1, Math.ceil(rule.burst / rule.rate))}`,
    };
  }

  private clientKey(rule: Rule, ctx: IngressContext): string {
    switch (rule.key.from) {
      case 'address':
        return clientAddress(ctx);
      case 'subject':
        return typeof ctx.claims?.sub === 'string' ? ctx.claims.sub : '';
      case 'header': {
        const value = ctx.req.headers[rule.key.header];
        return Array.isArray(value) ? value.join(',') : (value ?? '');
      }
    }
  }

  /** The bucket of a key, refilled up to now. */
  private bucket(key: string, rule: Rule): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= SWEEP_ABOVE) this.sweep(now);
      bucket = { tokens: rule.burst, updatedMs: now };
      this.buckets.set(key, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(rule.burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * rule.rate);
    bucket.updatedMs = now;
    return bucket;
  }

  /** Drops buckets that would be full by now: forgetting them changes nothing. */
  private sweep(now: number): void {
    const byId = new Map(this.rules.map((rule) => [rule.id, rule]));
    for (const [key, bucket] of this.buckets) {
      const rule = byId.get(key.slice(0, key.indexOf('\u0000')));
      if (!rule || bucket.tokens + ((now - bucket.updatedMs) / 1000) * rule.rate >= rule.burst) {
        this.buckets.delete(key);
      }
    }
  }
}

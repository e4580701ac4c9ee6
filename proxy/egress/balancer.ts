/**
 * Load balancers: each picks one endpoint among the eligible ones. `avoid` holds endpoints a
 * previous attempt of the same call used; they are only picked when nothing else is left, so a
 * retry prefers another endpoint.
 */
import type { Endpoint } from './endpoints.js';
import type { LoadBalancerKind } from './policy.js';

export interface PickContext {
  readonly avoid: ReadonlySet<Endpoint>;
  /** Value of the hash header, for consistent_hash. */
  readonly hashKey?: string | undefined;
}

export interface Balancer {
  pick(endpoints: readonly Endpoint[], context: PickContext): Endpoint | undefined;
}

function preferred(endpoints: readonly Endpoint[], avoid: ReadonlySet<Endpoint>): readonly Endpoint[] {
  if (avoid.size === 0) return endpoints;
  const fresh = endpoints.filter((endpoint) => !avoid.has(endpoint));
  return fresh.length > 0 ? fresh : endpoints;
}

export class RoundRobinBalancer implements Balancer {
  private next = 0;

  pick(endpoints: readonly Endpoint[], { avoid }: PickContext): Endpoint | undefined {
    const candidates = preferred(endpoints, avoid);
    if (candidates.length === 0) return undefined;
    const endpoint = candidates[this.next % candidates.length];
    this.next = (this.next + 1) % Number.MAX_SAFE_INTEGER;
    return endpoint;
  }
}

/** Power of two choices: of two endpoints drawn at random, the one of lower `cost` (the first on a tie). */
class TwoChoicesBalancer implements Balancer {
  constructor(
    private readonly cost: (endpoint: Endpoint) => number,
    private readonly random: () => number,
  ) {}

  pick(endpoints: readonly Endpoint[], { avoid }: PickContext): Endpoint | undefined {
    const candidates = preferred(endpoints, avoid);
    if (candidates.length <= 1) return candidates[0];
    const first = Math.floor(this.random() * candidates.length);
    // A second index different from the first, uniformly.
    let second = Math.floor(this.random() * (candidates.length - 1));
    if (second >= first) second += 1;
    const a = candidates[first];
    const b = candidates[second];
    return this.cost(b) < this.cost(a) ? b : a;
  }
}

/** least_request: the endpoint with fewer active requests of two drawn at random. */
export class LeastRequestBalancer extends TwoChoicesBalancer {
  constructor(random: () => number = Math.random) {
    super((endpoint) => endpoint.active, random);
  }
}

/**
 * peak_ewma, Linkerd's default balancer (Finagle's): of two endpoints drawn at random, the one of
 * lower peak-EWMA latency (peak-ewma.ts) × (active requests + 1). Where least_request sees only how
 * busy an endpoint is, this also sees how slow: an endpoint answering in 300 ms while the others
 * answer in 3 loses most of its share at its first slow answer, before outlier detection (which counts
 * failures) could notice anything.
 */
export class PeakEwmaBalancer extends TwoChoicesBalancer {
  constructor(random: () => number = Math.random) {
    super((endpoint) => endpoint.latency.current() * (endpoint.active + 1), random);
  }
}

/** 32-bit FNV-1a with a final avalanche (murmur3 fmix), enough to spread keys and ring points. */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * A hash ring with virtual nodes per endpoint, keyed by the endpoint's origin. Removing an endpoint
 * removes only its points, so only the keys that mapped to it move. Requests without a key are
 * spread round robin.
 */
export class ConsistentHashBalancer implements Balancer {
  private ring: { point: number; endpoint: Endpoint }[] = [];
  private ringOf: readonly Endpoint[] | undefined;
  private readonly fallback = new RoundRobinBalancer();

  constructor(private readonly virtualNodes = 160) {}

  pick(endpoints: readonly Endpoint[], context: PickContext): Endpoint | undefined {
    if (context.hashKey === undefined || endpoints.length === 0)
      return this.fallback.pick(endpoints, context);
    if (this.ringOf !== endpoints) this.build(endpoints);
    const key = hash32(context.hashKey);
    // First point at or after the key (binary search), wrapping around.
    let low = 0;
    let high = this.ring.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.ring[middle].point < key) low = middle + 1;
      else high = middle;
    }
    for (let step = 0; step < this.ring.length; step += 1) {
      const { endpoint } = this.ring[(low + step) % this.ring.length];
      if (!context.avoid.has(endpoint)) return endpoint;
    }
    return this.ring[low % this.ring.length].endpoint;
  }

  private build(endpoints: readonly Endpoint[]): void {
    const ring: { point: number; endpoint: Endpoint }[] = [];
    for (const endpoint of endpoints) {
      for (let node = 0; node < this.virtualNodes; node += 1) {
        ring.push({ point: hash32(`${endpoint.origin}#${node}`), endpoint });
      }
    }
    ring.sort((a, b) => a.point - b.point);
    this.ring = ring;
    this.ringOf = endpoints;
  }
}

export function createBalancer(kind: LoadBalancerKind, random: () => number = Math.random): Balancer {
  switch (kind) {
    case 'round_robin':
      return new RoundRobinBalancer();
    case 'least_request':
      return new LeastRequestBalancer(random);
    case 'peak_ewma':
      return new PeakEwmaBalancer(random);
    case 'consistent_hash':
      return new ConsistentHashBalancer();
  }
}

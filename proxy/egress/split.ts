/**
 * Weighted traffic split (canary): a service's endpoints in named groups, each with its own endpoint
 * set, balancer and outlier state, sharing the calls by weight. A service that is not split is one
 * group, and picking from it costs what a plain balancer pick costs (no random draw).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hash32, type Balancer } from './balancer.js';
import type { Endpoint } from './endpoints.js';

export interface EndpointGroup {
  readonly name: string;
  /** Relative share of calls; 0 sends the group nothing. */
  readonly weight: number;
  readonly balancer: Balancer;
  /** The group's endpoints a call may use now (outlier-ejected ones left out). */
  eligible(): readonly Endpoint[];
  /** Why discovery found no endpoints lately (the last DNS error), if it did. */
  discoveryError?(): string | undefined;
  /** Calls with all of these headers (lower-case names, exact values) come to this group whatever the weights. */
  readonly headers?: readonly (readonly [string, string])[] | undefined;
}

/** What the picker needs to know of a call. */
export interface PickRequest {
  /** Endpoints earlier attempts of the call used, in order. */
  readonly tried: ReadonlySet<Endpoint>;
  readonly hashKey?: string | undefined;
  readonly headers?: IncomingHttpHeaders;
}

/** Whether `headers` carry every one of `wanted` with exactly its value. */
function matchesHeaders(
  headers: IncomingHttpHeaders | undefined,
  wanted: readonly (readonly [string, string])[],
) {
  return wanted.every(([name, value]) => headers?.[name] === value);
}

/**
 * Weighted choice: each group with a weight above 0 that `accept`s is chosen with probability
 * weight / (sum of those weights). `draw` gives a number uniform in [0, 1), asked only when there is
 * more than one candidate; groups take consecutive ranges of it in their order, so the same number
 * always gives the same group.
 */
export function chooseWeighted<G extends { readonly weight: number }>(
  groups: readonly G[],
  draw: () => number,
  accept: (group: G) => boolean = () => true,
): G | undefined {
  const candidates = groups.filter((group) => group.weight > 0 && accept(group));
  if (candidates.length <= 1) return candidates[0];
  let total = 0;
  for (const group of candidates) total += group.weight;
  let point = draw() * total;
  for (const group of candidates) {
    if (point < group.weight) return group;
    point -= group.weight;
  }
  // A draw of (almost) 1 after rounding: the last range.
  return candidates[candidates.length - 1];
}

function lastOf<T>(items: ReadonlySet<T>): T | undefined {
  let last: T | undefined;
  for (const item of items) last = item;
  return last;
}

/**
 * Picks the endpoint of an attempt. A call whose headers match a group's `headers` goes to the
 * first such group, every attempt (none eligible there: none at all). Else the first attempt draws
 * a group by weight (from the hash key's value when there is one, so a key stays in its group; else
 * from `random`), skipping groups without an eligible endpoint. A retry prefers an endpoint the call
 * has not tried: in the group of the previous attempt first, then in another group drawn by weight;
 * when every endpoint was tried, the previous group's balancer picks again among them.
 */
export class SplitPicker {
  private readonly byName: ReadonlyMap<string, EndpointGroup>;
  /** The groups with a header match, in order; empty for most services, which then pay nothing for it. */
  private readonly matching: readonly EndpointGroup[];

  constructor(
    readonly groups: readonly EndpointGroup[],
    private readonly random: () => number = Math.random,
  ) {
    this.byName = new Map(groups.map((group) => [group.name, group]));
    this.matching = groups.filter((group) => group.headers !== undefined && group.headers.length > 0);
  }

  pick(request: PickRequest): Endpoint | undefined {
    const group = this.groupFor(request);
    if (group === undefined) return undefined;
    return group.balancer.pick(group.eligible(), { avoid: request.tried, hashKey: request.hashKey });
  }

  /** Discovery errors of the groups without endpoints, for the no-healthy-upstream detail. */
  problem(): string | undefined {
    const errors = this.groups
      .filter((group) => group.eligible().length === 0)
      .map((group) => group.discoveryError?.())
      .filter((error) => error !== undefined);
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  private groupFor({ tried, hashKey, headers }: PickRequest): EndpointGroup | undefined {
    const { groups } = this;
    for (const group of this.matching) if (matchesHeaders(headers, group.headers!)) return group;
    if (groups.length === 1) return groups[0].weight > 0 ? groups[0] : undefined;
    const nonEmpty = (group: EndpointGroup) => group.eligible().length > 0;
    const previous = lastOf(tried);
    if (previous === undefined) {
      // A hash of its own (not the ring's), so the group a key falls in says nothing of its ring position.
      const draw = hashKey === undefined ? this.random : () => hash32(`split\u0000${hashKey}`) / 2 ** 32;
      return chooseWeighted(groups, draw, nonEmpty);
    }
    const untried = (group: EndpointGroup) => group.eligible().some((endpoint) => !tried.has(endpoint));
    const own = previous.group === undefined ? undefined : this.byName.get(previous.group);
    if (own !== undefined && untried(own)) return own;
    return (
      chooseWeighted(groups, this.random, untried) ??
      (own !== undefined && nonEmpty(own) ? own : chooseWeighted(groups, this.random, nonEmpty))
    );
  }
}

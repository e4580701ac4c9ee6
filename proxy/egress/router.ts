/**
 * Which service a request is for: its `Host` header names a service (`orders`, `orders.shop`,
 * `orders.shop.svc`, `orders.shop.svc.cluster.local`, any port), else the longest path-prefix route
 * matches, else the catch-all service (zero-config mode's `UPSTREAM_URL`), else nothing.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ServiceIdRouter } from './service-id.js';

export interface RoutableService {
  readonly name: string;
  readonly namespace: string | undefined;
}

export interface PathRoute {
  readonly prefix: string;
  readonly service: string;
  readonly stripPrefix: boolean;
}

export type RouteResult =
  | { readonly service: string; readonly path: string; readonly route: string }
  | { readonly service: undefined; readonly host: string };

/** `Host` without port, lower case, without a trailing dot; IPv6 literals keep their brackets. */
export function hostName(host: string | undefined): string {
  if (!host) return '';
  const lower = host.trim().toLowerCase();
  const withoutPort = lower.startsWith('[') ? lower.slice(0, lower.indexOf(']') + 1) : lower.split(':')[0];
  return withoutPort.endsWith('.') ? withoutPort.slice(0, -1) : withoutPort;
}

/** Raw `Host` headers whose routing is remembered; past this many, the memory starts over. */
const MAX_REMEMBERED_HOSTS = 256;

export class Router {
  private readonly services: Map<string, RoutableService>;
  private readonly routes: readonly PathRoute[];
  /**
   * What each raw `Host` header resolved to: an app calls the same few names over and over, and
   * normalizing and splitting the header was a visible part of an egress request's CPU.
   */
  private readonly byHostHeader = new Map<
    string,
    { host: string; service: string | undefined; route: string }
  >();

  constructor(
    services: readonly RoutableService[],
    routes: readonly PathRoute[],
    private readonly catchAll?: string,
    /** light-router addressing (`egress.serviceIds`); absent, nothing of it runs. */
    private readonly serviceIds?: ServiceIdRouter,
  ) {
    this.services = new Map(services.map((service) => [service.name, service]));
    // Longest prefix first; a prefix ending in / is compared without it.
    this.routes = [...routes]
      .map((route) => ({
        ...route,
        prefix: route.prefix.length > 1 ? route.prefix.replace(/\/+$/, '') : route.prefix,
      }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The service a Host names, if any. */
  serviceForHost(host: string): string | undefined {
    const labels = host.split('.');
    const service = this.services.get(labels[0]);
    if (service === undefined) return undefined;
    if (labels.length === 1) return service.name;
    const [, namespace, ...rest] = labels;
    if (service.namespace !== undefined && namespace !== service.namespace) return undefined;
    const suffix = rest.join('.');
    return suffix === '' || suffix === 'svc' || suffix === 'svc.cluster.local' ? service.name : undefined;
  }

  private resolveHost(hostHeader: string): { host: string; service: string | undefined; route: string } {
    let resolved = this.byHostHeader.get(hostHeader);
    if (resolved === undefined) {
      const host = hostName(hostHeader);
      const service = this.serviceForHost(host);
      resolved = { host, service, route: `host:${service}` };
      if (this.byHostHeader.size >= MAX_REMEMBERED_HOSTS) this.byHostHeader.clear();
      this.byHostHeader.set(hostHeader, resolved);
    }
    return resolved;
  }

  route(
    hostHeader: string | undefined,
    path: string,
    headers?: IncomingHttpHeaders,
    method?: string,
  ): RouteResult {
    if (this.serviceIds !== undefined && headers !== undefined) {
      const named = this.serviceIds.byHeader(headers);
      if (named === null) return { service: undefined, host: 'the service_id/service_url header' };
      if (named !== undefined) return { ...named, path };
    }
    const { host, service: byHost, route: hostRoute } = this.resolveHost(hostHeader ?? '');
    if (byHost !== undefined) return { service: byHost, path, route: hostRoute };
    const pathOnly = path.split('?', 1)[0];
    if (this.serviceIds !== undefined) {
      const mapped = this.serviceIds.byPath(pathOnly, method ?? 'GET');
      if (mapped !== undefined) return { ...mapped, path };
    }
    for (const route of this.routes) {
      const { prefix } = route;
      const matches = prefix === '/' || pathOnly === prefix || pathOnly.startsWith(`${prefix}/`);
      if (!matches) continue;
      let forwarded = path;
      if (route.stripPrefix && prefix !== '/') {
        forwarded = path.slice(prefix.length);
        if (!forwarded.startsWith('/')) forwarded = `/${forwarded}`;
      }
      return { service: route.service, path: forwarded, route: `prefix:${route.prefix}` };
    }
    if (this.catchAll !== undefined) return { service: this.catchAll, path, route: 'upstream' };
    return { service: undefined, host };
  }
}

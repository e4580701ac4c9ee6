/**
 * A service's endpoints: one keep-alive undici Pool per endpoint, and a set that can be replaced
 * (static config today, DNS answers tomorrow) without dropping what is in flight: a removed
 * endpoint's pool is closed, which lets its running requests finish.
 */
import { Pool } from 'undici';
import { H2Origin, type KeepalivePolicy, type UpstreamDispatcher } from '../shared/h2-upstream.js';
import { PeakEwma } from './peak-ewma.js';

/** TLS of connections to https endpoints (PEM contents, not paths). */
export interface UpstreamTls {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  readonly serverName?: string | undefined;
}

export interface EndpointOptions {
  readonly connectTimeoutMs: number;
  readonly tls?: UpstreamTls | undefined;
  /** Connections per endpoint. */
  readonly connections?: number;
  /** Name of the traffic-split group the endpoints belong to (absent when the service is not split). */
  readonly group?: string | undefined;
  /** `http2`: one multiplexed HTTP/2 session per endpoint (h2c, or h2 by ALPN) instead of a pool. */
  readonly protocol?: 'http1' | 'http2';
  /** HTTP/2 only: PINGs on the session (intervalMs 0: none); H2Origin's default without it. */
  readonly keepalive?: KeepalivePolicy | undefined;
}

export class Endpoint {
  /** `http://host:port`: the identity of the endpoint. */
  readonly origin: string;
  readonly url: URL;
  readonly pool: UpstreamDispatcher;
  /** Traffic-split group of the endpoint, if the service is split. */
  readonly group: string | undefined;
  /** Requests sent to this endpoint that have not finished (least_request reads it). */
  active = 0;
  /** peak_ewma only: this endpoint's latency to response headers (balancer.ts, PeakEwma). */
  readonly latency = new PeakEwma();
  /** Connections to other ports of the endpoint's host (health checks on a management port), by port. */
  private readonly siblings = new Map<number, UpstreamDispatcher>();

  constructor(
    origin: string,
    private readonly options: EndpointOptions,
  ) {
    this.url = new URL(origin);
    this.origin = this.url.origin;
    this.group = options.group;
    this.pool = dispatcherFor(this.origin, options, options.connections ?? 128);
  }

  /** A dispatcher to `port` of this endpoint's host, with its scheme, protocol and TLS; one per port. */
  onPort(port: number): UpstreamDispatcher {
    let dispatcher = this.siblings.get(port);
    if (dispatcher === undefined) {
      const url = new URL(this.origin);
      url.port = String(port);
      dispatcher = dispatcherFor(url.origin, this.options, 1);
      this.siblings.set(port, dispatcher);
    }
    return dispatcher;
  }

  /** Lets the requests in flight finish, then closes the connections. */
  async close(): Promise<void> {
    await Promise.all([this.pool, ...this.siblings.values()].map((d) => d.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    await Promise.all([this.pool, ...this.siblings.values()].map((d) => d.destroy().catch(() => undefined)));
  }
}

/** An endpoint origin's keep-alive pool, or its HTTP/2 session, as the service's options say. */
function dispatcherFor(origin: string, options: EndpointOptions, connections: number): UpstreamDispatcher {
  // The service's TLS as Node's connect options, for https endpoints; both clients take them.
  const given = origin.startsWith('https:') ? options.tls : undefined;
  const tls = given && {
    ...(given.ca ? { ca: given.ca } : {}),
    ...(given.cert ? { cert: given.cert } : {}),
    ...(given.key ? { key: given.key } : {}),
    ...(given.serverName ? { servername: given.serverName } : {}),
  };
  // Timeouts are the dispatch layers' business (per try, overall); these only stop leaks.
  if (options.protocol === 'http2') {
    return new H2Origin(origin, {
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: options.connectTimeoutMs,
      tls,
      keepalive: options.keepalive,
    });
  }
  return new Pool(origin, {
    connections,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { timeout: options.connectTimeoutMs, ...tls },
  });
}

export class EndpointSet {
  private current: readonly Endpoint[] = [];
  /** Bumped on every change, so balancers know when to rebuild what they derive (hash rings). */
  version = 0;

  constructor(private readonly options: EndpointOptions) {}

  get all(): readonly Endpoint[] {
    return this.current;
  }

  /** Replaces the list: endpoints kept keep their pool, new ones get one, removed ones are closed. */
  update(origins: readonly string[]): void {
    const wanted = [...new Set(origins.map((origin) => new URL(origin).origin))];
    const byOrigin = new Map(this.current.map((endpoint) => [endpoint.origin, endpoint]));
    const next = wanted.map((origin) => byOrigin.get(origin) ?? new Endpoint(origin, this.options));
    const removed = this.current.filter((endpoint) => !wanted.includes(endpoint.origin));
    const previous = this.current;
    this.current = next;
    if (next.length !== previous.length || next.some((endpoint, index) => endpoint !== previous[index])) {
      this.version += 1;
    }
    // close() waits for the requests already dispatched on the pool, so nothing in flight is cut.
    for (const endpoint of removed) void endpoint.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.current.map((endpoint) => endpoint.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.current.map((endpoint) => endpoint.destroy()));
  }
}

/**
 * A service's endpoints: one keep-alive undici Pool per endpoint, and a set that can be replaced
 * (static config today, DNS answers tomorrow) without dropping what is in flight: a removed
 * endpoint's pool is closed, which lets its running requests finish.
 */
import { Pool } from 'undici';
import { H2Origin, type UpstreamDispatcher } from '../shared/h2-upstream.js';

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
  readonly keepalive?: { readonly intervalMs: number; readonly timeoutMs: number } | undefined;
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

  constructor(origin: string, options: EndpointOptions) {
    this.url = new URL(origin);
    this.origin = this.url.origin;
    this.group = options.group;
    // The service's TLS as Node's connect options, for https endpoints; both clients take them.
    const given = this.url.protocol === 'https:' ? options.tls : undefined;
    const tls = given && {
      ...(given.ca ? { ca: given.ca } : {}),
      ...(given.cert ? { cert: given.cert } : {}),
      ...(given.key ? { key: given.key } : {}),
      ...(given.serverName ? { servername: given.serverName } : {}),
    };
    // Timeouts are the dispatch layers' business (per try, overall); these only stop leaks.
    if (options.protocol === 'http2') {
      this.pool = new H2Origin(this.origin, {
        headersTimeout: 0,
        bodyTimeout: 0,
        connectTimeout: options.connectTimeoutMs,
        tls,
        keepalive: options.keepalive,
      });
      return;
    }
    this.pool = new Pool(this.origin, {
      connections: options.connections ?? 128,
      keepAliveTimeout: 30_000,
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: { timeout: options.connectTimeoutMs, ...tls },
    });
  }
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
    for (const endpoint of removed) void endpoint.pool.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all(this.current.map((endpoint) => endpoint.pool.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.current.map((endpoint) => endpoint.pool.destroy().catch(() => undefined)));
  }
}

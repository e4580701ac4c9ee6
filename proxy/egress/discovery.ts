/**
 * DNS discovery: resolves a name (A/AAAA) on an interval and replaces the service's endpoint set
 * with the answers. The resolver is injected, so tests (and other discovery sources) control it;
 * the default asks the system resolver, which follows /etc/resolv.conf search domains as
 * Kubernetes pods need.
 */
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import type { EndpointSet } from './endpoints.js';

/** Addresses for a name (IPv4 or IPv6, without brackets). */
export type Resolve = (name: string) => Promise<string[]>;

export const systemResolve: Resolve = async (name) =>
  (await lookup(name, { all: true, verbatim: true })).map((entry) => entry.address);

export interface DnsTarget {
  readonly name: string;
  readonly port: number;
  readonly scheme: 'http' | 'https';
  readonly intervalMs: number;
}

export function originFor(address: string, target: Pick<DnsTarget, 'port' | 'scheme'>): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `${target.scheme}://${host}:${target.port}`;
}

export class DnsDiscovery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Why the last lookup failed (undefined after a success). */
  lastError: string | undefined;

  constructor(
    private readonly service: string,
    private readonly target: DnsTarget,
    private readonly endpoints: EndpointSet,
    private readonly resolve: Resolve,
    private readonly logger: Logger,
  ) {}

  /** Resolves once now, then every `intervalMs`. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.target.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One lookup; concurrent calls share it. A failed lookup keeps the endpoints as they are. */
  refresh(): Promise<void> {
    this.running ??= (async () => {
      try {
        const addresses = await this.resolve(this.target.name);
        const origins = [...new Set(addresses)].sort().map((address) => originFor(address, this.target));
        const before = this.endpoints.version;
        this.endpoints.update(origins);
        this.lastError = undefined;
        if (this.endpoints.version !== before) {
          this.logger.info({ service: this.service, endpoints: origins }, 'egress endpoints changed');
        }
      } catch (err) {
        this.lastError = `DNS lookup of ${this.target.name} failed: ${(err as Error).message}`;
        this.logger.warn(
          { service: this.service, name: this.target.name, err: (err as Error).message },
          'DNS lookup failed; keeping the last endpoints',
        );
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }
}

/**
 * light-router style addressing: the app names the target service in a `service_id` header (or
 * gives its URL in `service_url`), or the path is looked up in a path-prefix dictionary and a
 * `path@method` dictionary (OpenAPI-style templates, `/v1/pets/{petId}@get`). Built once from
 * config; the egress router consults it only when `egress.serviceIds` is configured.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface ServiceIdConfig {
  readonly header?: string | undefined;
  readonly urlHeader?: string | undefined;
  readonly pathPrefixes?: Readonly<Record<string, string | undefined>> | undefined;
  readonly pathMethods?: Readonly<Record<string, string | undefined>> | undefined;
}

export interface ServiceIdMatch {
  readonly service: string;
  readonly route: string;
}

interface Template {
  readonly segments: readonly (string | undefined)[];
  readonly method: string;
  readonly service: string;
  readonly key: string;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export class ServiceIdRouter {
  private readonly header: string;
  private readonly urlHeader: string;
  private readonly prefixes: readonly { prefix: string; service: string }[];
  private readonly templates: readonly Template[];

  /**
   * @param known names of the configured services
   * @param originOf the service whose endpoint has this origin (for `service_url`)
   */
  constructor(
    config: ServiceIdConfig,
    private readonly known: ReadonlySet<string>,
    private readonly originOf: (origin: string) => string | undefined,
  ) {
    this.header = (config.header ?? 'service_id').toLowerCase();
    this.urlHeader = (config.urlHeader ?? 'service_url').toLowerCase();
    this.prefixes = Object.entries(config.pathPrefixes ?? {})
      .flatMap(([prefix, service]) => (service === undefined ? [] : [[prefix, service] as const]))
      .map(([prefix, service]) => ({
        prefix: prefix.length > 1 ? prefix.replace(/\/+$/, '') : prefix,
        service,
      }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    const methods = Object.entries(config.pathMethods ?? {}).flatMap(([key, service]) =>
      service === undefined ? [] : [[key, service] as const],
    );
    this.templates = methods.map(([key, service]) => {
      const at = key.lastIndexOf('@');
      if (at <= 0) throw new Error(`egress.serviceIds.pathMethods key "${key}" is not path@method`);
      const path = key.slice(0, at);
      return {
        segments: path.split('/').map((segment) => (/^\{[^}]*\}$/.test(segment) ? undefined : segment)),
        method: key.slice(at + 1).toUpperCase(),
        service,
        key,
      };
    });
  }

  /** Every service the dictionaries name (checked against the configured ones at start-up). */
  referencedServices(): string[] {
    return [...this.prefixes.map((p) => p.service), ...this.templates.map((t) => t.service)];
  }

  /** The service the headers name; `null` when they name one that does not exist. */
  byHeader(headers: IncomingHttpHeaders): ServiceIdMatch | null | undefined {
    const id = single(headers[this.header]);
    if (id !== undefined) {
      const service = id.trim().toLowerCase();
      return this.known.has(service) ? { service, route: `service_id:${service}` } : null;
    }
    const url = single(headers[this.urlHeader]);
    if (url !== undefined) {
      let origin: string;
      try {
        origin = new URL(url.trim()).origin;
      } catch {
        return null;
      }
      const service = this.originOf(origin);
      return service === undefined ? null : { service, route: `service_url:${service}` };
    }
    return undefined;
  }

  /** The service the dictionaries give a path (without query) and method. */
  byPath(pathOnly: string, method: string): ServiceIdMatch | undefined {
    if (this.templates.length > 0) {
      const segments = pathOnly.split('/');
      const upper = method.toUpperCase();
      for (const template of this.templates) {
        if (template.method !== upper || template.segments.length !== segments.length) continue;
        if (template.segments.every((s, i) => s === undefined || s === segments[i])) {
          return { service: template.service, route: `path_method:${template.key}` };
        }
      }
    }
    for (const { prefix, service } of this.prefixes) {
      if (prefix === '/' || pathOnly === prefix || pathOnly.startsWith(`${prefix}/`)) {
        return { service, route: `path_prefix:${prefix}` };
      }
    }
    return undefined;
  }
}

/** The router of `egress.serviceIds`, or undefined when it is not configured. */
export function buildServiceIdRouter(
  config: ServiceIdConfig | undefined,
  services: readonly { readonly name: string; readonly endpoints: readonly string[] }[],
): ServiceIdRouter | undefined {
  if (config === undefined) return undefined;
  const origins = new Map<string, string>();
  for (const service of services) {
    for (const endpoint of service.endpoints) {
      try {
        origins.set(new URL(endpoint).origin, service.name);
      } catch {
        // invalid endpoints are reported by the service itself
      }
    }
  }
  const router = new ServiceIdRouter(config, new Set(services.map((service) => service.name)), (origin) =>
    origins.get(origin),
  );
  for (const name of router.referencedServices()) {
    if (!services.some((service) => service.name === name)) {
      throw new Error(`egress.serviceIds names unknown service "${name}"`);
    }
  }
  return router;
}

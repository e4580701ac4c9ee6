import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/**
 * The metrics every part of the sidecar shares. The registry is created by the caller (one per
 * sidecar, one per test) so that nothing lands in prom-client's global registry.
 */
export interface MeshMetrics {
  readonly registry: Registry;
  readonly httpServerRequests: Counter<'listener' | 'method' | 'route' | 'status'>;
  readonly httpServerDuration: Histogram<'listener' | 'method' | 'route' | 'status'>;
  readonly configReloads: Counter<'result'>;
}

export function createMetrics(registry: Registry = new Registry()): MeshMetrics {
  collectDefaultMetrics({ register: registry });
  const serverLabels = ['listener', 'method', 'route', 'status'] as const;
  return {
    registry,
    httpServerRequests: new Counter({
      name: 'mesh_http_server_requests_total',
      help: 'Requests answered by the sidecar, by listener, method, route and status.',
      labelNames: serverLabels,
      registers: [registry],
    }),
    httpServerDuration: new Histogram({
      name: 'mesh_http_server_request_duration_seconds',
      help: 'Time from request start to the end of the response, by listener, method, route and status.',
      labelNames: serverLabels,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'mesh_config_reloads_total',
      help: 'Config reloads on SIGHUP, by result (success|failure).',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}

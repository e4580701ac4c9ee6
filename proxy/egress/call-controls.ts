/**
 * Per-call controls: request headers an app puts on one egress call to set its timeouts and retries
 * where the service's config is not right for it — a request that has only 800 ms left of its own
 * deadline, a write the app knows is safe to try more often. Envoy reads the same from
 * `x-envoy-upstream-rq-timeout-ms`, `x-envoy-upstream-rq-per-try-timeout-ms` and
 * `x-envoy-max-retries`. They are the app's instructions to its sidecar, so they are taken off the
 * request before it leaves; a malformed one is a 400 that names it, not a silent default.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { MeshError, type FieldError } from '../../services/runtime/errors.js';
import { MAX_TIMER_MS } from '../../services/runtime/http.js';

export interface CallControls {
  /** The whole call's time, retries included (in place of the service's `timeoutMs`). */
  readonly timeoutMs?: number;
  /** Each attempt's wait for the response headers (in place of `retry.perTryTimeoutMs`). */
  readonly perTryTimeoutMs?: number;
  /** Retries after the first attempt (in place of `retry.attempts` − 1). */
  readonly maxRetries?: number;
}

/** `retry.attempts` is at most 10 in the config; a call may not ask for more. */
const MAX_RETRIES = 9;

const CONTROLS = [
  ['x-mesh-timeout-ms', 'timeoutMs', 1, MAX_TIMER_MS, 'a whole number of milliseconds'],
  ['x-mesh-per-try-timeout-ms', 'perTryTimeoutMs', 1, MAX_TIMER_MS, 'a whole number of milliseconds'],
  ['x-mesh-max-retries', 'maxRetries', 0, MAX_RETRIES, 'a whole number of retries'],
] as const;

/**
 * Reads the call controls off `headers` and deletes them there. Undefined when the call has none
 * (the usual case: three lookups, nothing allocated); throws MESH_BAD_REQUEST listing every
 * malformed one.
 */
export function takeCallControls(headers: IncomingHttpHeaders): CallControls | undefined {
  let controls: Record<string, number> | undefined;
  let errors: FieldError[] | undefined;
  for (const [header, key, min, max, what] of CONTROLS) {
    const value = headers[header];
    if (value === undefined) continue;
    delete headers[header];
    const text = Array.isArray(value) ? undefined : value.trim();
    const number = text !== undefined && /^\d{1,10}$/.test(text) ? Number(text) : NaN;
    if (number >= min && number <= max) {
      (controls ??= {})[key] = number;
    } else {
      (errors ??= []).push({
        in: 'header',
        path: `/${header}`,
        message: `must be ${what} from ${min} to ${max}, once; got ${JSON.stringify(value)}`,
      });
    }
  }
  if (errors !== undefined) {
    throw new MeshError(
      'MESH_BAD_REQUEST',
      `invalid call control header: ${errors.map((e) => e.path.slice(1)).join(', ')}`,
      {
        errors,
      },
    );
  }
  return controls;
}

/**
 * The one registry of errors that leave the process. Each code maps to exactly one HTTP status,
 * to a Strimzi/Confluent-style `error_code` where the bridge API can answer it, and says whether
 * the failed operation may be retried (which drives retries and dead-lettering).
 *
 * The README's error table is checked against this list by errors.test.ts: change both together.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  /**
   * Five-digit bridge error_code whose first three digits are `status`. Without one, the bridge
   * answers the generic `status * 100` (40000, 50300, ...).
   */
  readonly bridgeCode?: number;
  readonly canRetry: boolean;
}

export const ERRORS = {
  MESH_BAD_REQUEST: { status: 400, title: 'Invalid request', canRetry: false },
  MESH_UNAUTHORIZED: { status: 401, title: 'Missing or invalid token', canRetry: false },
  MESH_FORBIDDEN: { status: 403, title: 'Missing scope', canRetry: false },
  MESH_NOT_FOUND: { status: 404, title: 'No such operation', canRetry: false },
  MESH_TOPIC_NOT_FOUND: { status: 404, title: 'Topic not found', bridgeCode: 40401, canRetry: false },
  MESH_PARTITION_NOT_FOUND: { status: 404, title: 'Partition not found', bridgeCode: 40402, canRetry: false },
  MESH_CONSUMER_NOT_FOUND: {
    status: 404,
    title: 'Consumer instance not found',
    bridgeCode: 40403,
    canRetry: false,
  },
  MESH_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed', canRetry: false },
  MESH_NOT_ACCEPTABLE: { status: 406, title: 'Not acceptable', bridgeCode: 40601, canRetry: false },
  MESH_CONSUMER_EXISTS: {
    status: 409,
    title: 'Consumer instance name already exists',
    bridgeCode: 40901,
    canRetry: false,
  },
  MESH_SUBSCRIPTION_CONFLICT: {
    status: 409,
    title: 'Subscription and assignment both requested',
    bridgeCode: 40902,
    canRetry: false,
  },
  MESH_TOPIC_EXISTS: { status: 409, title: 'Topic already exists', bridgeCode: 40903, canRetry: false },
  MESH_CONSUMER_NOT_SUBSCRIBED: {
    status: 409,
    title: 'Consumer instance neither subscribed nor assigned',
    bridgeCode: 40904,
    canRetry: false,
  },
  MESH_PAYLOAD_TOO_LARGE: { status: 413, title: 'Body too large', bridgeCode: 41301, canRetry: false },
  MESH_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'Unsupported content type',
    bridgeCode: 41501,
    canRetry: false,
  },
  MESH_INVALID_RECORD: {
    status: 422,
    title: 'Invalid record or consumer config',
    bridgeCode: 42201,
    canRetry: false,
  },
  MESH_SCHEMA_MISMATCH: {
    status: 422,
    title: 'Record fails its topic schema',
    bridgeCode: 42202,
    canRetry: false,
  },
  MESH_RATE_LIMITED: { status: 429, title: 'Rate limited', bridgeCode: 42901, canRetry: true },
  MESH_INTERNAL: { status: 500, title: 'Internal error', bridgeCode: 50001, canRetry: true },
  MESH_UPSTREAM_FAILED: { status: 502, title: 'Upstream failed', canRetry: true },
  MESH_NOT_READY: { status: 503, title: 'Not ready', canRetry: true },
  MESH_DRAINING: { status: 503, title: 'Draining', canRetry: true },
  MESH_OVERLOADED: { status: 503, title: 'Overloaded', canRetry: true },
  MESH_KAFKA_UNAVAILABLE: { status: 503, title: 'Kafka unavailable', bridgeCode: 50301, canRetry: true },
  MESH_NO_HEALTHY_UPSTREAM: { status: 503, title: 'No healthy upstream', canRetry: true },
  MESH_CIRCUIT_OPEN: { status: 503, title: 'Circuit open', canRetry: true },
  MESH_TOKEN_UNAVAILABLE: { status: 503, title: 'OAuth2 token unavailable', canRetry: true },
  MESH_TIMEOUT: { status: 504, title: 'Timeout', canRetry: true },
} as const satisfies Record<string, ErrorSpec>;

export type MeshErrorCode = keyof typeof ERRORS;

export interface FieldError {
  /** Where the problem is: `path`, `query`, `header`, `cookie` or `body`. */
  readonly in: 'path' | 'query' | 'header' | 'cookie' | 'body';
  /** JSON pointer inside that location. */
  readonly path: string;
  readonly message: string;
}

export class MeshError extends Error {
  override readonly name = 'MeshError';
  readonly code: MeshErrorCode;
  readonly status: number;
  readonly canRetry: boolean;
  readonly errors: readonly FieldError[] | undefined;
  /** Response headers that go with this error (`Retry-After`, `WWW-Authenticate`, `x-mesh-error`). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: MeshErrorCode,
    detail?: string,
    options: { cause?: unknown; errors?: readonly FieldError[]; headers?: Record<string, string> } = {},
  ) {
    const spec: ErrorSpec = ERRORS[code];
    super(detail ?? spec.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = spec.status;
    this.canRetry = spec.canRetry;
    this.errors = options.errors;
    this.headers = Object.freeze({ ...options.headers });
  }

  /** RFC 9457 problem details, as every non-bridge listener answers them. */
  toProblem(instance?: string): ProblemDetails {
    const spec = ERRORS[this.code];
    return {
      type: `urn:mesh-sidecar:error:${this.code}`,
      title: spec.title,
      status: this.status,
      detail: this.message,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
      ...(this.errors === undefined ? {} : { errors: this.errors }),
    };
  }

  /** Strimzi/Confluent-shaped body for the bridge API. */
  toBridgeError(): BridgeErrorBody {
    const spec: ErrorSpec = ERRORS[this.code];
    return {
      error_code: spec.bridgeCode ?? this.status * 100,
      message: this.message,
      ...(this.errors === undefined ? {} : { validation_errors: this.errors }),
    };
  }
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: MeshErrorCode;
  instance?: string;
  errors?: readonly FieldError[];
}

export interface BridgeErrorBody {
  error_code: number;
  message: string;
  validation_errors?: readonly FieldError[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const BRIDGE_ERROR_CONTENT_TYPE = 'application/vnd.kafka.v2+json';

/** Wraps anything thrown into a MeshError, keeping MeshErrors as they are. */
export function toMeshError(err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  return new MeshError('MESH_INTERNAL', 'Internal error', { cause: err });
}

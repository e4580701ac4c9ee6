/**
 * The one lifecycle every listener and background worker of the sidecar shares.
 * Only services/sidecar composes components; nothing else starts or stops them.
 */
export interface Readiness {
  readonly ready: boolean;
  /** Why the component is not ready; shown by /readyz and logged. */
  readonly reason?: string;
}

export interface Component {
  /** Stable, human-readable name used in logs, /readyz and metrics (`admin`, `ingress`, ...). */
  readonly name: string;
  /** Binds sockets and connects clients. Rejects when the component cannot run at all. */
  start(): Promise<void>;
  /** Current readiness; cheap, called on every /readyz. */
  readiness(): Readiness;
  /**
   * Stops accepting new work and waits for in-flight work to finish. Idempotent: every call
   * returns the same promise. Listeners stop accepting connections here.
   */
  drain(): Promise<void>;
  /** Ends whatever is left at once (after drain, or when the shutdown deadline passed). Idempotent. */
  stop(): Promise<void>;
  /**
   * What the component is doing now, for the admin status page and `GET /status`: a plain,
   * JSON-serialisable snapshot of state it already keeps. Cheap (no network I/O); optional.
   */
  status?(): ComponentStatus | Promise<ComponentStatus>;
}

/** A JSON value: what `status()` may return. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The snapshot of one component for the status page (`GET /status`). */
export type ComponentStatus = { [key: string]: JsonValue };

/** The state of an HTTP listener as the status page shows it. */
export interface ListenerStatus {
  readonly [key: string]: JsonValue;
  readonly name: string;
  /** The bound URL, or null while not bound. */
  readonly url: string | null;
  readonly listening: boolean;
  readonly draining: boolean;
  /** Open client connections. */
  readonly connections: number;
  /** Requests being answered now. */
  readonly inFlight: number;
}

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
}

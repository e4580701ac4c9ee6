/**
 * The abort signal of a proxied request and of each egress attempt: `aborted`, `reason` and the
 * listeners to run when it aborts, which is all the layers and `sendUpstream` need. Not an
 * AbortController: on Node 20 each one builds an EventTarget, and linking one to another
 * (`addEventListener`, or `AbortSignal.any`) costs more again; an egress call made three of them
 * (app gone, overall timeout, per-try timeout). Not an EventEmitter either: its constructor, the
 * `once` wrapper and `removeListener` were a few µs of every request's CPU (profiled), for one
 * event that fires at most once.
 *
 * A child (`new CallSignal(parent)`) is aborted with its parent's reason when the parent is;
 * `unlink()` detaches it once it is no longer needed.
 */
export class CallSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;
  private parent: CallSignal | undefined;
  private onParentAbort: (() => void) | undefined;

  constructor(parent?: CallSignal) {
    if (parent === undefined) return;
    if (parent.aborted) {
      this.aborted = true;
      this.reason = parent.reason;
      return;
    }
    this.parent = parent;
    this.onParentAbort = () => this.abort(parent.reason);
    parent.onAbort(this.onParentAbort);
  }

  /** Runs `listener` when the signal aborts; never when it already has (check `aborted` first). */
  onAbort(listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  /** Forgets a listener given to `onAbort`. */
  offAbort(listener: () => void): void {
    const listeners = this.listeners;
    if (listeners === undefined) return;
    const index = listeners.lastIndexOf(listener);
    if (index >= 0) listeners.splice(index, 1);
  }

  /** Aborts with `reason` and runs the listeners, once: a second abort changes nothing. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.unlink();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }

  unlink(): void {
    if (this.parent === undefined) return;
    this.parent.offAbort(this.onParentAbort!);
    this.parent = undefined;
    this.onParentAbort = undefined;
  }
}

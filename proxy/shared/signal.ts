import { EventEmitter } from 'node:events';

/**
 * The abort signal of a proxied request and of each egress attempt: `aborted`, `reason` and an
 * `abort` event, which is what the layers and `sendUpstream` read. Not an AbortController: on
 * Node 20 each one builds an EventTarget, and linking one to another (`addEventListener`, or
 * `AbortSignal.any`) costs more again; an egress call made three of them (app gone, overall
 * timeout, per-try timeout), a measurable share of a request's CPU.
 *
 * A child (`new CallSignal(parent)`) is aborted with its parent's reason when the parent is;
 * `unlink()` detaches it once it is no longer needed.
 */
export class CallSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;
  private parent: CallSignal | undefined;
  private onParentAbort: (() => void) | undefined;

  constructor(parent?: CallSignal) {
    super();
    if (parent === undefined) return;
    if (parent.aborted) {
      this.aborted = true;
      this.reason = parent.reason;
      return;
    }
    this.parent = parent;
    this.onParentAbort = () => this.abort(parent.reason);
    parent.on('abort', this.onParentAbort);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.unlink();
    this.emit('abort');
  }

  unlink(): void {
    if (this.parent === undefined) return;
    this.parent.removeListener('abort', this.onParentAbort!);
    this.parent = undefined;
    this.onParentAbort = undefined;
  }
}

/**
 * One request to an upstream on an undici dispatcher (a keep-alive `Pool`), through the dispatch
 * handler API: the response headers resolve a promise and the body goes straight from undici's
 * parser into the client's response.
 *
 * Not `pool.request()`: that wraps every response body in a Readable stream, and relaying a stream
 * costs the proxy its buffering, `data`/`end`/`close` events and listener bookkeeping on every
 * request — measured here at about a tenth of a small request's CPU, for nothing a proxy needs.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { H2DispatchHandler } from './h2-upstream.js';
import { annotateResponse } from '../../services/runtime/http.js';
import { withoutHopByHop } from './headers.js';
import type { CallSignal } from './signal.js';

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** Whoever gets the response must `pipeTo` or `discard` its body. */
  readonly body: UpstreamBody;
}

/** A response body this size or larger, received before anyone pipes it, pauses the upstream. */
const MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * Sends one request. Resolves with the final response's headers (1xx answers are skipped); rejects
 * with undici's error when no response came, or with the signal's reason (an Error) when `signal`
 * aborts first. The signal stays in force while the body streams: aborting it then cuts the body.
 */
export function sendUpstream(
  dispatcher: Pick<Dispatcher, 'dispatch'>,
  options: Dispatcher.DispatchOptions,
  signal?: CallSignal,
): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(options, new UpstreamBody(resolve, reject, signal));
  });
}

/**
 * Passes an upstream's trailers on to an HTTP/2 client (gRPC status and message). An HTTP/1.1
 * client's response gets none: node:http would only send them chunked, undeclared, and HTTP/1.1
 * proxies drop them by default (Envoy does).
 */
function relayTrailers(res: ServerResponse, trailers: IncomingHttpHeaders | undefined): void {
  if (trailers === undefined || res.req.httpVersionMajor !== 2) return;
  res.addTrailers(withoutHopByHop(trailers));
  const grpcStatus = trailers['grpc-status'];
  if (typeof grpcStatus === 'string') annotateResponse(res, { grpcStatus });
}

function abortError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error('the upstream request was aborted');
}

/**
 * The response body of one upstream request, and the undici handler that receives it (one object
 * per request instead of two). Chunks that arrive before `pipeTo` — usually the whole body of a
 * small response, parsed in the same tick as its headers — are held, up to MAX_BUFFERED_BYTES.
 */
export class UpstreamBody implements H2DispatchHandler {
  private resolveHeaders: ((response: UpstreamResponse) => void) | undefined;
  private rejectHeaders: ((err: Error) => void) | undefined;
  private readonly signal: CallSignal | undefined;
  private readonly onAbort: (() => void) | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private sink: ServerResponse | undefined;
  private tap: ((chunk: Buffer) => void) | undefined;
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private finished = false;
  private doneCallbacks: (() => void)[] | undefined;
  private readonly onDrain = () => this.controller?.resume();
  private upgradedSocket: Duplex | undefined;
  private trailerFields: IncomingHttpHeaders | undefined;

  constructor(
    resolve: (response: UpstreamResponse) => void,
    reject: (err: Error) => void,
    signal: CallSignal | undefined,
  ) {
    this.resolveHeaders = resolve;
    this.rejectHeaders = reject;
    if (signal === undefined) return;
    this.signal = signal;
    this.onAbort = () => {
      const err = abortError(signal.reason);
      // Still queued in the pool: answer now, and abort once undici starts the request.
      if (this.controller === undefined) this.settleHeaders(err);
      else this.controller.abort(err);
    };
    if (signal.aborted) queueMicrotask(this.onAbort);
    else signal.onAbort(this.onAbort);
  }

  /**
   * The upstream's connection when it answered an upgrade request (`upgrade` in the dispatch
   * options) with 101: there is no body, the connection now speaks the new protocol, and the
   * caller owns it (proxy/shared/tunnel.ts).
   */
  get upgraded(): Duplex | undefined {
    return this.upgradedSocket;
  }

  /** True once the body has ended, failed, or been discarded. */
  get done(): boolean {
    return this.finished;
  }

  /**
   * Streams the body into `res` (whose head the caller has written) and ends it, pausing the
   * upstream while `res` is full; an upstream failure destroys `res`. `tap` sees every chunk.
   */
  pipeTo(res: ServerResponse, tap?: (chunk: Buffer) => void): void {
    this.sink = res;
    this.tap = tap;
    if (this.failure !== undefined) {
      res.destroy(this.failure);
      return;
    }
    let full = false;
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) {
      // A body already complete (the usual small response) leaves in `end(lastChunk)`: node:http
      // then writes head and body at once, without the cork/uncork tick of a separate `write`.
      const written = this.ended ? held.length - 1 : held.length;
      for (let i = 0; i < written; i += 1) {
        tap?.(held[i]);
        full = !res.write(held[i]);
      }
      if (this.ended) {
        tap?.(held[written]);
        relayTrailers(res, this.trailerFields);
        res.end(held[written]);
        return;
      }
    }
    if (this.ended) {
      relayTrailers(res, this.trailerFields);
      res.end();
    } else if (full) res.once('drain', this.onDrain);
    else this.controller?.resume();
  }

  /**
   * Drops the body: aborts the upstream request if it is still running (its connection closes);
   * closes an upgraded connection nobody took.
   */
  discard(): void {
    this.held = undefined;
    this.upgradedSocket?.destroy();
    if (this.finished) return;
    this.failure = new Error('the upstream response body was discarded');
    this.finish();
    this.controller?.abort(this.failure);
  }

  /** The upstream's trailers (HTTP/2; a gRPC Trailers-Only answer's status fields too), once known. */
  get trailers(): IncomingHttpHeaders | undefined {
    return this.trailerFields;
  }

  /**
   * The `grpc-status` the upstream ended a gRPC call with: known with the headers for a
   * Trailers-Only answer, else once the body has ended; undefined until then, and for a response
   * that carried none (not gRPC, or cut before its trailers).
   */
  get grpcStatus(): number | undefined {
    const value = this.trailerFields?.['grpc-status'];
    return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined;
  }

  /** Runs `callback` once the body has ended, failed or been discarded (at once if it has). */
  whenDone(callback: () => void): void {
    if (this.finished) callback();
    else (this.doneCallbacks ??= []).push(callback);
  }

  // undici's handler API -------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal?.aborted) controller.abort(abortError(this.signal.reason));
  }

  onResponseTrailersOnly(trailers: IncomingHttpHeaders): void {
    this.trailerFields = trailers;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200 || this.resolveHeaders === undefined) return;
    const resolve = this.resolveHeaders;
    this.resolveHeaders = this.rejectHeaders = undefined;
    resolve({ statusCode, headers, body: this });
  }

  /** 101 to an upgrade request: the call is complete (its timeouts end) and the socket changes hands. */
  onRequestUpgrade(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    // undici took its listeners off the socket: until the caller joins it, an error must not throw.
    socket.on('error', () => socket.destroy());
    this.upgradedSocket = socket;
    this.ended = true;
    const resolve = this.resolveHeaders;
    this.resolveHeaders = this.rejectHeaders = undefined;
    this.finish();
    if (resolve === undefined) socket.destroy();
    else resolve({ statusCode, headers, body: this });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined) {
      (this.held ??= []).push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes >= MAX_BUFFERED_BYTES) controller.pause();
      return;
    }
    this.tap?.(chunk);
    if (!sink.write(chunk)) {
      controller.pause();
      sink.once('drain', this.onDrain);
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers?: IncomingHttpHeaders): void {
    if (this.finished) return;
    this.ended = true;
    // Only an HTTP/2 upstream (h2-upstream.ts) reports any; gRPC's status travels in them.
    this.trailerFields = trailers ?? this.trailerFields;
    if (this.sink !== undefined) {
      relayTrailers(this.sink, this.trailerFields);
      this.sink.end();
    }
    this.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.resolveHeaders !== undefined) {
      this.settleHeaders(err);
      return;
    }
    if (this.finished) return;
    this.failure = err;
    this.held = undefined;
    this.sink?.destroy(err);
    this.finish();
  }

  private settleHeaders(err: Error): void {
    const reject = this.rejectHeaders;
    this.resolveHeaders = this.rejectHeaders = undefined;
    this.finish();
    reject?.(err);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.onAbort !== undefined) this.signal!.offAbort(this.onAbort);
    const callbacks = this.doneCallbacks;
    this.doneCallbacks = undefined;
    if (callbacks !== undefined) for (const callback of callbacks) callback();
  }
}

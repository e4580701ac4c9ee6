/**
 * Requests to an HTTP/2 upstream (h2c for `http:` origins, h2 negotiated by ALPN for `https:`) on
 * one multiplexed node:http2 session, behind the same `dispatch(options, handler)` interface as an
 * undici Pool, so `sendUpstream` and everything above it do not know which protocol carried the call.
 *
 * Not undici's own HTTP/2 client: in undici 7 a response's trailers arrive after it has already
 * reported the response complete (the stream's `end` comes before its `trailers` event) and are
 * lost — and trailers are what gRPC puts its status in. Here the response completes on the
 * stream's `close`, which comes after both.
 */
import type { IncomingHttpHeaders } from 'node:http';
import http2, {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2';
import type { Readable } from 'node:stream';
import { errors, type Dispatcher } from 'undici';
import { isGrpcContentType } from '../../services/runtime/http.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_FLAG_END_STREAM: END_STREAM,
} = http2.constants;

/** What a gRPC server sends as its call's status, in the trailers or in a Trailers-Only answer. */
const GRPC_STATUS_FIELDS = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin']);

/** HTTP/2 keepalive PINGs (see KEEPALIVE): least time between two, and how long one may go unanswered. */
export interface KeepalivePolicy {
  /** 0: no PINGs. */
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface H2OriginOptions {
  /** How long the upstream may take to send response headers; 0: no limit. */
  readonly headersTimeout: number;
  /** Longest pause between two response body chunks; 0: no limit. */
  readonly bodyTimeout: number;
  /** How long establishing the session may take; 0: no limit. */
  readonly connectTimeout?: number;
  /** For `https:` origins: CA, client certificate and key (mTLS), server name. */
  readonly tls?: Pick<SecureClientSessionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
  /** PING every `intervalMs` (0: never); no answer within `timeoutMs` ends the session. Default KEEPALIVE. */
  readonly keepalive?: KeepalivePolicy | undefined;
}

/**
 * Every call to an origin shares its one session, so a connection that died silently (the upstream
 * host gone without a FIN or RST, a NAT or firewall that dropped it) would hold every new call until
 * its timeouts fire, one after the other, for as long as TCP takes to notice (many minutes). A PING
 * that gets no answer within `timeoutMs` ends the session instead: its streams fail (as resets), and
 * the next call opens a new one. The PINGs follow gRPC's client keepalive (gRFC A8), because gRPC
 * servers police them: grpc-go and grpc-java count a PING on a connection without streams, or one
 * sooner than 5 minutes after the last while they have sent nothing, as a strike, and answer the
 * third with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" — closing the connection, quiet streams and
 * all. So: at most one PING per `intervalMs` (5 minutes, what such servers accept by default), only
 * while streams are open; the first stream after a pause that long is pinged as it opens, so a
 * connection that died while idle (the usual NAT case) is found within `timeoutMs` of the next call;
 * and a stream given up unanswered (timed out) is followed by a PING at once, at most once a minute,
 * so a connection that dies under steady traffic is found soon after the first call times out on it.
 */
export const KEEPALIVE: KeepalivePolicy = { intervalMs: 300_000, timeoutMs: 10_000 };

/**
 * Least time between two PINGs for streams given up unanswered (SessionKeepalive.unanswered): a slow
 * but live gRPC server forgives PINGs once it sends anything, and this many make no third strike
 * before it has been silent for minutes.
 */
const UNANSWERED_PING_SPACING_MS = 60_000;

/** The PINGs of one HTTP/2 session (see KEEPALIVE): told when its streams open, close, or are given up. */
class SessionKeepalive {
  private streams = 0;
  /** When the last PING went out; a new session counts as just checked. */
  private lastPingAt = Date.now();
  private lastUnansweredPingAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private waiting = false;

  constructor(
    private readonly session: ClientHttp2Session,
    private readonly origin: string,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
  ) {
    session.once('close', () => clearTimeout(this.timer));
  }

  streamOpened(): void {
    this.streams += 1;
    if (this.timer !== undefined || this.waiting) return;
    const dueInMs = this.lastPingAt + this.intervalMs - Date.now();
    if (dueInMs <= 0) this.ping();
    else this.schedule(dueInMs);
  }

  streamClosed(): void {
    this.streams -= 1;
  }

  /**
   * A stream was given up before any answer (its timeout, or its caller left). Under steady traffic
   * the interval would find a dead connection only minutes later, every call meanwhile timing out on
   * it: a PING now finds it within `timeoutMs`.
   */
  unanswered(): void {
    const now = Date.now();
    if (this.waiting || now - this.lastUnansweredPingAt < UNANSWERED_PING_SPACING_MS) return;
    this.lastUnansweredPingAt = now;
    this.ping();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Idle: no PING (the next stream to open sends one if it is due).
      if (this.streams > 0) this.ping();
    }, delayMs);
    this.timer.unref();
  }

  private ping(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const session = this.session;
    if (session.closed || session.destroyed) return;
    if (session.connecting) {
      this.schedule(this.intervalMs);
      return;
    }
    this.lastPingAt = Date.now();
    this.waiting = true;
    const deadline = setTimeout(() => {
      session.destroy(
        new errors.SocketError(
          `the HTTP/2 connection to ${this.origin} did not answer a PING within ${this.timeoutMs} ms`,
        ),
      );
    }, this.timeoutMs);
    deadline.unref();
    const answered = () => {
      this.waiting = false;
      clearTimeout(deadline);
      this.schedule(this.intervalMs);
    };
    try {
      session.ping(answered);
    } catch {
      answered();
    }
  }
}

/** What the egress endpoints and the ingress hold: an undici Pool or an H2Origin. */
export interface UpstreamDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  /** Lets the requests in flight finish, then closes the connections. */
  close(): Promise<void>;
  /** Cuts everything at once. */
  destroy(): Promise<void>;
  /** Requests waiting for a connection (the egress breaker's `maxPending`). */
  readonly stats: { readonly pending: number };
}

/**
 * A request the upstream did not process, so any method may be sent again (RFC 9113 §8.7): its
 * stream was refused (RST_STREAM REFUSED_STREAM, or above the last stream id of a GOAWAY — an
 * upstream shutting down gracefully, as in a rolling deployment), or the session had already
 * been told to go away when the stream was to be opened.
 */
export class UnprocessedRequestError extends Error {
  override readonly name = 'UnprocessedRequestError';
  readonly code = 'MESH_H2_UNPROCESSED';
}

/** Errors node:http2 throws when a stream cannot be opened on a session going away or gone. */
const SESSION_GONE_CODES = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION']);

/**
 * What a handler of an HTTP/2 upstream's response may implement beyond undici's interface: the
 * status fields of a gRPC Trailers-Only answer, called before `onResponseStart`, so the status of a
 * failed call is known with its headers (and a retry can be decided on it).
 */
export interface H2DispatchHandler extends Dispatcher.DispatchHandler {
  onResponseTrailersOnly?(trailers: IncomingHttpHeaders): void;
}

function connectTimeoutError(origin: string, ms: number): Error {
  return new errors.ConnectTimeoutError(`connecting to ${origin} took longer than ${ms} ms`);
}

/** One upstream origin spoken to over HTTP/2: a session opened on first use and again after it ends. */
export class H2Origin implements UpstreamDispatcher {
  private session: ClientHttp2Session | undefined;
  /** The current session's PINGs (none when keepalive is off). */
  private keepalive: SessionKeepalive | undefined;
  private closing = false;
  private waiting = 0;

  constructor(
    readonly origin: string,
    private readonly options: H2OriginOptions,
  ) {}

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new H2Call(handler, this.options);
    if (this.closing) {
      call.fail(new errors.ClientClosedError());
      return false;
    }
    let session: ClientHttp2Session;
    try {
      session = this.currentSession();
    } catch (err) {
      call.fail(err as Error);
      return false;
    }
    if (session.connecting) this.waiting += 1;
    call.start(session, options, this.keepalive);
    return true;
  }

  /** Requests sent on a session that is still connecting. */
  get stats(): { readonly pending: number } {
    return { pending: this.waiting };
  }

  async close(): Promise<void> {
    this.closing = true;
    const session = this.session;
    this.session = undefined;
    if (session === undefined || session.destroyed) return;
    await new Promise<void>((resolve) => session.close(resolve));
  }

  async destroy(): Promise<void> {
    this.closing = true;
    this.session?.destroy();
    this.session = undefined;
    await Promise.resolve();
  }

  private currentSession(): ClientHttp2Session {
    const current = this.session;
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const session = http2.connect(this.origin, {
      ...(this.origin.startsWith('https:') ? this.options.tls : {}),
      settings: { enablePush: false },
    });
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    // A failed or lost session fails its streams, which carry the error to their callers.
    session.on('error', forget);
    // GOAWAY: the streams already running finish; new requests go to a new session.
    session.on('goaway', forget);
    session.once('close', forget);
    // Calls are only ever waiting on the newest session: when it connects or fails, none is.
    const stopWaiting = () => {
      if (this.session === session || this.session === undefined) this.waiting = 0;
    };
    session.once('connect', stopWaiting);
    session.once('close', stopWaiting);
    const { intervalMs, timeoutMs } = this.options.keepalive ?? KEEPALIVE;
    this.keepalive =
      intervalMs > 0 ? new SessionKeepalive(session, this.origin, intervalMs, timeoutMs) : undefined;
    const connectTimeout = this.options.connectTimeout ?? 0;
    if (connectTimeout > 0) {
      const timer = setTimeout(() => {
        if (!session.connecting) return;
        session.destroy(connectTimeoutError(this.origin, connectTimeout));
      }, connectTimeout);
      timer.unref();
      session.once('connect', () => clearTimeout(timer));
      session.once('close', () => clearTimeout(timer));
    }
    this.session = session;
    return session;
  }
}

/** Request headers as HTTP/2 wants them: pseudo-headers, `Host` as `:authority`. */
function h2RequestHeaders(options: Dispatcher.DispatchOptions): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': options.method, ':path': options.path };
  const given = (options.headers ?? {}) as Record<string, string | string[] | undefined>;
  for (const name in given) {
    const value = given[name];
    if (value === undefined) continue;
    if (name === 'host') out[':authority'] = value;
    else out[name] = value;
  }
  // gRPC servers may insist on it; it is the one `TE` HTTP/2 allows, and the hop-by-hop filter drops it.
  if (isGrpcContentType(given['content-type'])) out.te = 'trailers';
  return out;
}

/** One request on a session, driving an undici dispatch handler. */
class H2Call implements Dispatcher.DispatchController {
  private stream: ClientHttp2Stream | undefined;
  private keepalive: SessionKeepalive | undefined;
  private headersTimer: NodeJS.Timeout | undefined;
  private responded = false;
  private ended = false;
  private settled = false;
  private trailers: IncomingHttpHeaders | undefined;
  aborted = false;
  paused = false;
  reason: Error | null = null;

  constructor(
    private readonly handler: H2DispatchHandler,
    private readonly options: H2OriginOptions,
  ) {}

  start(
    session: ClientHttp2Session,
    options: Dispatcher.DispatchOptions,
    keepalive: SessionKeepalive | undefined,
  ): void {
    this.handler.onRequestStart?.(this, {});
    if (this.settled) return;
    const body = options.body;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(h2RequestHeaders(options), { endStream: body == null });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.fail(
        typeof code === 'string' && SESSION_GONE_CODES.has(code)
          ? new UnprocessedRequestError(`the HTTP/2 session is going away (${code})`, { cause: err })
          : (err as Error),
      );
      return;
    }
    this.stream = stream;
    this.keepalive = keepalive;
    if (keepalive !== undefined) {
      keepalive.streamOpened();
      stream.once('close', () => keepalive.streamClosed());
    }
    // A request's own timeouts (as undici takes them in the dispatch options) over the origin's.
    const headersTimeout = options.headersTimeout ?? this.options.headersTimeout;
    const bodyTimeout = options.bodyTimeout ?? this.options.bodyTimeout;
    if (headersTimeout > 0) {
      this.headersTimer = setTimeout(() => {
        this.abort(new errors.HeadersTimeoutError());
      }, headersTimeout);
    }
    stream.on('response', (headers, flags) => this.onResponse(headers, flags));
    stream.on('data', (chunk: Buffer) => {
      if (this.settled) return;
      this.handler.onResponseData?.(this, chunk);
    });
    stream.once('trailers', (trailers: IncomingHttpHeaders) => (this.trailers = trailers));
    stream.once('end', () => (this.ended = true));
    stream.once('error', (err: Error) => this.fail(this.refused(stream) ?? err));
    stream.once('close', () => this.onClose(stream));
    if (bodyTimeout > 0) {
      stream.setTimeout(bodyTimeout, () => {
        if (this.responded) this.abort(new errors.BodyTimeoutError());
      });
    }
    if (body == null) return;
    if (typeof body === 'string' || Buffer.isBuffer(body) || body instanceof Uint8Array) {
      stream.end(body);
      return;
    }
    const source = body as Readable;
    source.once('error', (err) => this.abort(err));
    source.pipe(stream);
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.headersTimer);
    this.handler.onResponseError?.(this, err);
  }

  // Dispatcher.DispatchController ------------------------------------------------------------------

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    if (this.stream !== undefined && !this.responded) this.keepalive?.unanswered();
    this.fail(reason);
    if (this.stream !== undefined && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  }

  pause(): void {
    this.paused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream?.resume();
  }

  // ------------------------------------------------------------------------------------------------

  private onResponse(headers: IncomingHttpHeaders & { ':status'?: number }, flags: number): void {
    if (this.settled) return;
    clearTimeout(this.headersTimer);
    this.responded = true;
    const status = headers[':status'] ?? 502;
    const plain: IncomingHttpHeaders = {};
    // gRPC's Trailers-Only answer (an error before any message): the status fields ride in the one
    // HEADERS frame that also ends the stream. A proxy's client response has sent its head before
    // it learns the stream ended, so they are passed on as trailers — the form gRPC clients accept.
    const trailers: IncomingHttpHeaders | undefined =
      (flags & END_STREAM) !== 0 && headers['grpc-status'] !== undefined ? {} : undefined;
    for (const name in headers) {
      if (name.charCodeAt(0) === 0x3a) continue;
      if (trailers !== undefined && GRPC_STATUS_FIELDS.has(name)) trailers[name] = headers[name];
      else plain[name] = headers[name];
    }
    if (trailers !== undefined) {
      this.trailers = trailers;
      this.handler.onResponseTrailersOnly?.(trailers);
    }
    this.handler.onResponseStart?.(this, status, plain, '');
  }

  /** The stream is over: complete when the response came and ended cleanly, else fail. */
  private onClose(stream: ClientHttp2Stream): void {
    if (this.settled) return;
    if (this.responded && this.ended && stream.rstCode === NGHTTP2_NO_ERROR) {
      this.settled = true;
      this.handler.onResponseEnd?.(this, this.trailers ?? {});
      return;
    }
    this.fail(
      this.refused(stream) ??
        new errors.SocketError(
          `the HTTP/2 stream closed ${this.responded ? 'before the response ended' : 'without a response'} (code ${stream.rstCode})`,
        ),
    );
  }

  /** The error of a stream the upstream refused before answering; undefined for any other end. */
  private refused(stream: ClientHttp2Stream): UnprocessedRequestError | undefined {
    if (this.responded || stream.rstCode !== NGHTTP2_REFUSED_STREAM) return undefined;
    return new UnprocessedRequestError('the upstream refused the HTTP/2 stream (REFUSED_STREAM)');
  }
}

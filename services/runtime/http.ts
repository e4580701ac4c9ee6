import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2, {
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ListenerStatus } from './component.js';
import { MeshError, PROBLEM_CONTENT_TYPE, toMeshError } from './errors.js';
import type { MeshMetrics } from './metrics.js';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ListenerTls {
  readonly cert: string;
  readonly key: string;
  /** CA bundle for client certificates; when set, clients must present one (mTLS). */
  readonly clientCa?: string;
}

export interface HttpListenerOptions {
  /** Listener name: the `listener` label of the server metrics and the access log field. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls?: ListenerTls | undefined;
  readonly handler: RequestHandler;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Access lines are written at `info` unless this says otherwise (admin probes log at `debug`). */
  readonly accessLogLevel?: 'info' | 'debug';
  /**
   * Hands requests with an `Upgrade` header (WebSocket and the like) to `handler` like any other,
   * with a response bound to their connection (see `onUpgrade`); without it node:http serves them
   * as plain requests and the upgrade is never offered to anyone.
   */
  readonly acceptUpgrades?: boolean;
  /**
   * Also speaks HTTP/2: over TLS when the client offers `h2` by ALPN, in cleartext with prior
   * knowledge (h2c, what gRPC clients send), each new connection told apart by its first bytes
   * (the HTTP/2 preface). The connection goes to the HTTP/2 or the HTTP/1.1 server; both run the
   * same handler (node:http2's compatibility API).
   */
  readonly http2?: boolean;
  /**
   * How long a connection may stay open with nothing in flight (HTTP/1.1 keep-alive, an HTTP/2
   * session without streams); IDLE_TIMEOUT_MS unless a test says otherwise.
   */
  readonly idleTimeoutMs?: number;
}

/** Longer than any usual client idle timeout, so the client closes first and never races a reuse. */
const IDLE_TIMEOUT_MS = 65_000;

/**
 * Closes (GOAWAY) an HTTP/2 session after `ms` without frames while no stream is open, as the
 * HTTP/1.1 server closes idle keep-alive connections; a session waiting on a long stream (a gRPC
 * server stream with nothing to say) is left alone, and timed again once its last stream ends.
 */
function closeWhenIdle(session: Http2Session, ms: number): void {
  let open = 0;
  const onIdle = () => {
    if (open === 0) session.close();
  };
  // A listener of its own: the callback of setTimeout is a `once` listener, gone after a first
  // timeout that found a stream open.
  session.on('timeout', onIdle);
  session.setTimeout(ms);
  session.on('stream', (stream: ServerHttp2Stream) => {
    open += 1;
    stream.once('close', () => {
      open -= 1;
      // The timer may have fired while the stream was open: arm it again.
      if (open === 0 && !session.closed) session.setTimeout(ms);
    });
  });
}

/** What a handler tells the listener about a request, for metrics and the access log. */
interface RequestNotes {
  route?: string;
  traceId?: string;
  /** The `grpc-status` the caller was sent (in the trailers, or in a Trailers-Only answer). */
  grpcStatus?: string;
}
const notesKey = Symbol('mesh.requestNotes');
type Annotated = ServerResponse & { [notesKey]?: RequestNotes };

/**
 * Sets the bounded `route` label (an OpenAPI operation or a fixed admin path), the trace id, and the
 * `grpc-status` sent to a gRPC caller.
 */
export function annotateResponse(res: ServerResponse, notes: RequestNotes): void {
  const annotated = res as Annotated;
  const current = annotated[notesKey];
  if (current === undefined) {
    annotated[notesKey] = { route: notes.route, traceId: notes.traceId, grpcStatus: notes.grpcStatus };
    return;
  }
  if (notes.route !== undefined) current.route = notes.route;
  if (notes.traceId !== undefined) current.traceId = notes.traceId;
  if (notes.grpcStatus !== undefined) current.grpcStatus = notes.grpcStatus;
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** Query parameters whose values never reach the access log (API keys, tokens, signatures). */
const SECRET_QUERY_PARAM = /key|token|secret|password|passwd|signature|sig$|auth|code|credential/i;

/** The request URL as the access log shows it: values of secret-looking query parameters redacted. */
export function redactUrl(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (url === undefined || q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq >= 0 && SECRET_QUERY_PARAM.test(decodeURIComponentSafe(name)) ? `${name}=[redacted]` : pair;
    })
    .join('&');
  return `${url.slice(0, q)}?${query}`;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** How long a client may take to send a request's headers (slowloris protection). */
export const HEADERS_TIMEOUT_MS = 10_000;

const { NGHTTP2_NO_ERROR } = http2.constants;

/** What every HTTP/2 connection starts with (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`), for the access
 * log when tracing is off; undefined when the header is absent or malformed.
 */
export function traceIdOf(traceparent: string | string[] | undefined): string | undefined {
  if (typeof traceparent !== 'string' || traceparent.length < 55 || traceparent[2] !== '-') return undefined;
  const traceId = traceparent.slice(3, 35);
  return /^[0-9a-f]{32}$/.test(traceId) && traceId !== '00000000000000000000000000000000'
    ? traceId
    : undefined;
}

/**
 * Keeps the caller's `x-request-id` or makes one (and puts it on the request, so it is forwarded).
 * The proxy listeners echo it when they write the response head: a header set earlier with
 * `setHeader` sends `writeHead(status, headers)` down node:http's slow path, which re-validates
 * every response header one by one (a few microseconds per proxied request).
 */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  const id = typeof given === 'string' && given.length > 0 && given.length <= 200 ? given : randomUUID();
  req.headers[REQUEST_ID_HEADER] = id;
  return id;
}

/** Keeps the caller's `x-request-id` or makes one, and echoes it on the response. */
export function ensureRequestId(req: IncomingMessage, res: ServerResponse): string {
  const id = requestIdOf(req);
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/** Answers an error as RFC 9457 problem+json with the error's own headers (and the request id). */
export function sendProblem(
  res: ServerResponse,
  error: unknown,
  instance?: string,
  requestId?: string,
): void {
  const meshError: MeshError = toMeshError(error);
  if (res.headersSent) {
    res.destroy(meshError);
    return;
  }
  if (requestId !== undefined) res.setHeader(REQUEST_ID_HEADER, requestId);
  const http2Response = res.req.httpVersionMajor === 2;
  for (const [name, value] of Object.entries(meshError.headers)) {
    // HTTP/2 has no Connection header (node:http2 throws on it): the stream ends, not the connection.
    if (!(http2Response && name === 'connection')) res.setHeader(name, value);
  }
  if (isGrpc(res.req)) {
    sendGrpcStatus(res, meshError);
    return;
  }
  const body = JSON.stringify(meshError.toProblem(instance));
  res.statusCode = meshError.status;
  res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/** A gRPC content type: `application/grpc`, `+proto`, `+json`, … */
export function isGrpcContentType(contentType: unknown): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

/** A gRPC call. */
export function isGrpc(req: IncomingMessage): boolean {
  return isGrpcContentType(req.headers['content-type']);
}

/**
 * gRPC status codes for the sidecar's own refusals: by stable code where one says more than the
 * HTTP status, else by the status as gRPC's HTTP mapping does (what a gRPC client would make of
 * the HTTP status anyway, doc/http-grpc-status-mapping.md).
 */
const GRPC_STATUS_BY_CODE: Readonly<Record<string, number>> = {
  MESH_TIMEOUT: 4, // DEADLINE_EXCEEDED
  MESH_RATE_LIMITED: 8, // RESOURCE_EXHAUSTED
};
const GRPC_STATUS_BY_HTTP: Readonly<Record<number, number>> = {
  400: 13, // INTERNAL
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  404: 12, // UNIMPLEMENTED
  429: 14, // UNAVAILABLE
  502: 14,
  503: 14,
  504: 14,
};
const GRPC_UNKNOWN = 2;

/**
 * gRPC status codes as HTTP statuses, the mapping Envoy applies (Grpc::Utility::grpcToHttpStatus)
 * so that its 5xx-based breaker, outlier detection and retry conditions see gRPC failures: OK 200,
 * CANCELLED 499, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, UNIMPLEMENTED 501, the rest by meaning.
 */
const HTTP_STATUS_BY_GRPC: readonly number[] = [
  200, // 0 OK
  499, // 1 CANCELLED
  500, // 2 UNKNOWN
  400, // 3 INVALID_ARGUMENT
  504, // 4 DEADLINE_EXCEEDED
  404, // 5 NOT_FOUND
  409, // 6 ALREADY_EXISTS
  403, // 7 PERMISSION_DENIED
  429, // 8 RESOURCE_EXHAUSTED
  400, // 9 FAILED_PRECONDITION
  409, // 10 ABORTED
  400, // 11 OUT_OF_RANGE
  501, // 12 UNIMPLEMENTED
  500, // 13 INTERNAL
  503, // 14 UNAVAILABLE
  500, // 15 DATA_LOSS
  401, // 16 UNAUTHENTICATED
];

const GRPC_CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/**
 * The name of the gRPC status a caller got (the `grpc_code` label, as go-grpc-prometheus names it):
 * the `grpc-status` it was sent; CANCELLED for a call that ended without a response (the caller
 * cancelled, or the stream was cut); without a `grpc-status`, what gRPC clients make of the HTTP
 * status (doc/http-grpc-status-mapping.md; a 200 without one is UNKNOWN). Codes gRPC does not
 * define are UNKNOWN: the label stays bounded whatever an upstream sends.
 */
export function grpcCodeName(grpcStatus: string | undefined, completed: boolean, httpStatus: number): string {
  if (grpcStatus !== undefined) {
    return (/^\d{1,2}$/.test(grpcStatus) ? GRPC_CODE_NAMES[Number(grpcStatus)] : undefined) ?? 'UNKNOWN';
  }
  if (!completed) return 'CANCELLED';
  return GRPC_CODE_NAMES[GRPC_STATUS_BY_HTTP[httpStatus] ?? GRPC_UNKNOWN];
}

const GRPC_TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/** The longest delay a Node.js timer takes (2^31 − 1 ms, ~24.8 days): a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A gRPC call's deadline from its `grpc-timeout` header (up to 8 digits and a unit: H, M, S, m, u,
 * n), in whole milliseconds (at least 1, at most what a timer can wait: `99999999H` is "no deadline
 * to speak of", not "now"); undefined without one or when it is malformed.
 */
export function grpcTimeoutMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(Number(match[1]) * GRPC_TIMEOUT_UNIT_MS[match[2]])));
}

/** A `grpc-timeout` value for `ms` milliseconds (at least 1): in ms while 8 digits hold it, else coarser, rounded up. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  for (const unit of ['m', 'S', 'M', 'H']) {
    const count = Math.ceil(whole / GRPC_TIMEOUT_UNIT_MS[unit]);
    if (count <= 99_999_999) return `${count}${unit}`;
  }
  return '99999999H';
}

/** The HTTP status of a gRPC status (`grpc-status`); codes gRPC does not define are 500. */
export function httpStatusOfGrpc(grpcStatus: number): number {
  return HTTP_STATUS_BY_GRPC[grpcStatus] ?? 500;
}

/** gRPC's `grpc-message` encoding: UTF-8, with bytes outside printable ASCII and `%` percent-encoded. */
export function grpcPercentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A refusal of a gRPC call, as gRPC clients read one: HTTP 200 with `grpc-status` and a
 * percent-encoded `grpc-message` (the stable code and the detail) in a headers-only response,
 * as Envoy answers gRPC calls it refuses itself. The problem's own headers (Retry-After,
 * WWW-Authenticate, x-mesh-error) stay on it.
 */
function sendGrpcStatus(res: ServerResponse, error: MeshError): void {
  const grpcStatus = GRPC_STATUS_BY_CODE[error.code] ?? GRPC_STATUS_BY_HTTP[error.status] ?? GRPC_UNKNOWN;
  res.statusCode = 200;
  // A gRPC-Web caller reads the status from these headers too, under its own content type.
  const asked = res.req.headers['content-type'];
  const web = typeof asked === 'string' && asked.startsWith('application/grpc-web');
  res.setHeader('content-type', web ? asked.split(';')[0].trim() : 'application/grpc');
  res.setHeader('grpc-status', String(grpcStatus));
  annotateResponse(res, { grpcStatus: String(grpcStatus) });
  res.setHeader('grpc-message', grpcPercentEncode(`${error.code}: ${error.message}`));
  res.setHeader('x-mesh-error-code', error.code);
  res.end();
}

/**
 * True when the whole response went out. node:http2's compatibility response reports
 * `writableFinished` also for a stream the client cancelled before it ended, so an HTTP/2 response
 * counts as complete when it was ended and its stream closed without an error code.
 */
export function responseCompleted(res: ServerResponse): boolean {
  if (res.req.httpVersionMajor !== 2) return res.writableFinished;
  return res.writableEnded && (res as unknown as Http2ServerResponse).stream.rstCode === NGHTTP2_NO_ERROR;
}

/**
 * True when the request has a body: HTTP/1.1 framing headers say so (RFC 9112 §6.3); an HTTP/2
 * request has one unless its HEADERS frame ended the stream (RFC 9113 §8.1).
 */
export function hasBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2) return !(req as unknown as Http2ServerRequest).stream.endAfterHeaders;
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

const ABSOLUTE_FORM = /^https?:\/\/(?:[^/?#@]*@)?([^/?#]*)([^#]*)/i;

/**
 * An absolute-form request target (`GET http://orders/v1/x HTTP/1.1`), which every HTTP client sends
 * to a proxy named in `HTTP_PROXY` and which a server must accept (RFC 9112 §3.2.2), becomes the
 * origin-form the handlers route on (`/v1/x`), its authority the `Host` (the received one is ignored,
 * as the RFC says). node:http leaves the target as it came.
 */
function toOriginForm(req: IncomingMessage, url: string): void {
  const match = ABSOLUTE_FORM.exec(url);
  if (match === null) return;
  const [, authority, rest] = match;
  req.url = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (authority !== '') req.headers.host = authority;
}

/**
 * node:http hands every byte after an upgrade request's head to the new protocol, so a body the
 * request declares could never be told apart from it: refused, as nothing could forward it intact.
 */
const refuseUpgradeWithBody: RequestHandler = (req, res) =>
  sendProblem(
    res,
    new MeshError(
      'MESH_BAD_REQUEST',
      'an upgrade request cannot carry a body (Content-Length or Transfer-Encoding with Upgrade)',
    ),
    req.url,
  );

/**
 * A node:http(s) server with the drain semantics every listener needs: `drain()` stops accepting
 * connections, answers what is in flight with `Connection: close`, closes idle keep-alive
 * connections and resolves when the last in-flight request has finished; `stop()` cuts the rest.
 */
export class HttpListener {
  readonly name: string;
  private readonly options: HttpListenerOptions;
  private readonly server: Server;
  /** With `http2`: the HTTP/2 server, and the listening server that hands connections to either. */
  private readonly h2: Http2Server | undefined;
  private readonly front: net.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly h2Sessions = new Set<Http2Session>();
  private inFlight = 0;
  private draining = false;
  private drainPromise: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private boundAddress: AddressInfo | undefined;

  constructor(options: HttpListenerOptions) {
    this.name = options.name;
    this.options = options;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    // Slow-header (slowloris) clients get 408 and are closed after HEADERS_TIMEOUT_MS, checked
    // every second, instead of Node's 60 s checked every 30 s.
    const limits = { headersTimeout: HEADERS_TIMEOUT_MS, connectionsCheckingInterval: 1_000 };
    const tlsOptions = options.tls && {
      cert: readFileSync(options.tls.cert),
      key: readFileSync(options.tls.key),
      ...(options.tls.clientCa
        ? { ca: readFileSync(options.tls.clientCa), requestCert: true, rejectUnauthorized: true }
        : {}),
    };
    // With HTTP/2 the HTTP/1.1 server only parses: `front` accepts (and terminates TLS).
    this.server =
      tlsOptions && !options.http2
        ? https.createServer({ ...limits, ...tlsOptions }, onRequest)
        : http.createServer(limits, onRequest);
    const idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.server.keepAliveTimeout = idleTimeoutMs;
    if (options.acceptUpgrades) {
      this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.onUpgrade(req, socket, head),
      );
    }
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    if (options.http2) {
      const h2 = http2.createServer(
        { settings: { enablePush: false } },
        onRequest as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
      );
      h2.on('session', (session: Http2Session) => {
        this.h2Sessions.add(session);
        session.once('close', () => this.h2Sessions.delete(session));
        // A session that fails (a reset socket, a protocol error) fails its streams; nothing to rethrow.
        session.on('error', () => undefined);
        if (this.draining) session.close();
        else closeWhenIdle(session, idleTimeoutMs);
      });
      this.h2 = h2;
      // TLS: ALPN says which protocol the client speaks. Cleartext: the first bytes do.
      this.front = tlsOptions
        ? tls.createServer({ ...tlsOptions, ALPNProtocols: ['h2', 'http/1.1'] }, (socket) =>
            (socket.alpnProtocol === 'h2' ? h2 : this.server).emit('connection', socket),
          )
        : net.createServer({ noDelay: true }, (socket) => this.routeConnection(socket));
    }
  }

  /**
   * Reads a new connection's first bytes and hands it to the HTTP/2 server when they are the
   * HTTP/2 client preface (RFC 9113 §3.4), else to the HTTP/1.1 server; the bytes are put back
   * first. A connection that sends nothing is closed after HEADERS_TIMEOUT_MS, as a slow HTTP/1.1
   * head would be.
   */
  private routeConnection(socket: Socket): void {
    let seen: Buffer = Buffer.alloc(0);
    const giveUp = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(giveUp, HEADERS_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const compared = Math.min(seen.length, HTTP2_PREFACE.length);
      const isHttp2 = seen.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      // Only part of what could still be the preface: wait for the rest.
      if (isHttp2 && compared < HTTP2_PREFACE.length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', giveUp);
      socket.off('end', giveUp);
      socket.pause();
      socket.unshift(seen);
      (isHttp2 ? this.h2! : this.server).emit('connection', socket);
      // The server's own listeners are on now: let the bytes flow to them.
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
    socket.once('error', giveUp);
    socket.once('end', giveUp);
  }

  /** Binds the socket; port 0 picks a free port (see `address`). */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const listening = this.front ?? this.server;
      const onError = (err: Error) => reject(err);
      listening.once('error', onError);
      listening.listen(this.options.port, this.options.host, () => {
        listening.off('error', onError);
        // The HTTP/1.1 server behind `front` never listens itself, but starts tracking its
        // connections (header timeouts, closeIdleConnections) on this event.
        if (listening !== this.server) this.server.emit('listening');
        this.boundAddress = listening.address() as AddressInfo;
        resolve(this.boundAddress);
      });
    });
  }

  get address(): AddressInfo {
    if (!this.boundAddress) throw new Error(`listener ${this.name} is not bound`);
    return this.boundAddress;
  }

  get url(): string {
    const { address, port, family } = this.address;
    const host = family === 'IPv6' ? `[${address}]` : address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${port}`;
  }

  get isListening(): boolean {
    return (this.front ?? this.server).listening;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  /** The listener's state for the status page (`GET /status`). */
  status(): ListenerStatus {
    return {
      name: this.name,
      url: this.boundAddress && this.isListening ? this.url : null,
      listening: this.isListening,
      draining: this.draining,
      connections: this.sockets.size + this.h2Sessions.size,
      inFlight: this.inFlight,
    };
  }

  drain(): Promise<void> {
    this.drainPromise ??= new Promise<void>((resolve) => {
      this.draining = true;
      // close() stops accepting; its callback only fires once every connection is gone, which
      // waits for the in-flight requests below, so readiness of the drain is tracked by count.
      this.front?.close(() => undefined);
      this.server.close(() => undefined);
      this.server.closeIdleConnections();
      // GOAWAY: HTTP/2 clients open no new streams; the running ones finish.
      for (const session of this.h2Sessions) session.close();
      if (this.inFlight === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    this.draining = true;
    if (this.front?.listening) this.front.close(() => undefined);
    if (this.server.listening) this.server.close(() => undefined);
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    for (const session of this.h2Sessions) session.destroy();
    this.resolveIdleWaiters();
    await Promise.resolve();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, handler = this.options.handler): void {
    const started = performance.now();
    const url = req.url;
    // Origin-form ("/path?query") on nearly every request: one comparison.
    if (url !== undefined && url.charCodeAt(0) !== 0x2f) toOriginForm(req, url);
    // Captured now: the socket is detached from the request by the time 'close' fires.
    const remote = req.socket.remoteAddress;
    this.inFlight += 1;
    if (req.httpVersionMajor === 2) {
      // The handlers route on Host; HTTP/2 carries it as `:authority`.
      req.headers.host ??= req.headers[':authority'] as string | undefined;
    } else if (this.draining) res.setHeader('connection', 'close');
    // One listener: a response emits `close` after `finish`, and alone when the connection is cut.
    // `on`, not `once`: 'close' comes once, and `once` wraps and then removes every listener.
    res.on('close', () => {
      this.inFlight -= 1;
      this.observe(req, res, started, remote);
      if (this.draining) {
        this.server.closeIdleConnections();
        if (this.inFlight === 0) this.resolveIdleWaiters();
      }
    });
    try {
      handler(req, res);
    } catch (err) {
      this.options.logger.error({ err, listener: this.name }, 'request handler threw');
      sendProblem(res, err);
    }
  }

  /**
   * An upgrade request leaves node:http's request cycle with its raw connection. It goes through
   * the same handler as any request, with a response object bound to that connection, so every
   * step before forwarding (auth, limits, validation, refusals as problem+json) applies alike.
   * Whoever answers 101 owns the connection from then on (a tunnel, proxy/shared/tunnel.ts); any
   * other answer closes it. The request counts as in flight, for metrics and drain, until the
   * connection closes.
   */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // node:http took its own listeners off the socket: without one, a reset would throw.
    socket.on('error', () => socket.destroy());
    // Bytes the client sent after its request head belong to the upgraded protocol.
    if (head.length > 0) socket.unshift(head);
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => {
      if (res.statusCode !== 101) socket.end();
    });
    this.onRequest(req, res, hasBody(req) ? refuseUpgradeWithBody : this.options.handler);
  }

  private resolveIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private observe(
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    remote: string | undefined,
  ): void {
    const seconds = (performance.now() - started) / 1e3;
    const notes = (res as Annotated)[notesKey] ?? {};
    const completed = responseCompleted(res);
    const status = completed ? res.statusCode : 0;
    const method = req.method ?? 'UNKNOWN';
    const route = notes.route ?? 'other';
    const labels = { listener: this.name, method, route, status: String(status) };
    this.options.metrics.httpServerRequests.series(labels).inc();
    this.options.metrics.httpServerDuration.series(labels).observe(seconds);
    // gRPC needs HTTP/2, so HTTP/1.1 requests pay one comparison — unless a status was noted for
    // them (gRPC-Web, or a refusal of a gRPC call).
    const grpcCode =
      notes.grpcStatus !== undefined || (req.httpVersionMajor === 2 && isGrpc(req))
        ? grpcCodeName(notes.grpcStatus, completed, status)
        : undefined;
    if (grpcCode !== undefined) {
      this.options.metrics.grpcServerHandled
        .series({ listener: this.name, route, grpc_code: grpcCode })
        .inc();
    }
    const level = this.options.accessLogLevel ?? 'info';
    // Built only when written: on the hot path at level warn this costs one comparison.
    if (!this.options.logger.isLevelEnabled(level)) return;
    this.options.logger[level](
      {
        listener: this.name,
        requestId: req.headers[REQUEST_ID_HEADER],
        traceId: notes.traceId,
        method: req.method,
        url: redactUrl(req.url),
        route,
        status,
        grpcCode,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        remote,
        aborted: !completed,
      },
      'access',
    );
  }
}

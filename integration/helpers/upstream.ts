/**
 * Controllable test upstreams: real node:http(s) servers on port 0 that answer, fail, hang, reset
 * the connection or answer slowly on command, and record every request they receive.
 */
import { once } from 'node:events';
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type Behaviour =
  | { kind: 'ok'; status?: number; body?: string; headers?: Record<string, string> }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'slow'; ms: number };

export const ok = (status = 200): Behaviour => ({ kind: 'ok', status });
export const fail = (status = 503): Behaviour => ({ kind: 'ok', status });
export const hang: Behaviour = { kind: 'hang' };
export const reset: Behaviour = { kind: 'reset' };
export const slow = (ms: number): Behaviour => ({ kind: 'slow', ms });

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** performance.now() when the request head arrived. */
  readonly at: number;
  /** CN of the verified client certificate (mTLS). */
  readonly clientCertificate?: string | undefined;
  /** SNI name the client sent (TLS). */
  readonly serverName?: string | undefined;
}

export interface UpstreamOptions {
  /** Shows up in every answer (`{"upstream": name}`) so tests can tell upstreams apart. */
  readonly name?: string;
  /** Serve HTTPS with this key and certificate (PEM); with `ca`, require a client certificate. */
  readonly tls?: {
    readonly key: string | Buffer;
    readonly cert: string | Buffer;
    readonly ca?: string | Buffer;
  };
  /** Bind this port (to come back on the same address after `stop()`). */
  readonly port?: number;
  /** Bind this loopback address (127.0.0.2, ... give several upstreams the same port). */
  readonly host?: string;
}

export class TestUpstream {
  readonly name: string;
  readonly requests: RecordedRequest[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private fallback: Behaviour = ok();
  private readonly queue: Behaviour[] = [];
  private readonly byPath = new Map<string, Behaviour>();
  private boundPort: number | undefined;
  private activeCount = 0;
  private maxActiveCount = 0;

  constructor(private readonly options: UpstreamOptions = {}) {
    this.name = options.name ?? 'upstream';
  }

  /** Starts listening on 127.0.0.1 (the same port again after `stop()`). */
  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const { tls } = this.options;
    const server = tls
      ? https.createServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        )
      : http.createServer(handler);
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('secureConnection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.listen(this.boundPort ?? this.options.port ?? 0, this.host);
    await once(server, 'listening');
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get port(): number {
    if (this.boundPort === undefined) throw new Error('upstream not started');
    return this.boundPort;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://${this.host}:${this.port}`;
  }

  /** What every request gets once the script is used up. */
  setBehaviour(behaviour: Behaviour): void {
    this.fallback = behaviour;
  }

  /** What every request for `path` (exactly, query included) gets, ahead of the script and the default. */
  setPathBehaviour(path: string, behaviour: Behaviour): void {
    this.byPath.set(path, behaviour);
  }

  /** What the next requests get, one entry each, before the default applies again. */
  script(...behaviours: Behaviour[]): void {
    this.queue.push(...behaviours);
  }

  /** Requests being handled right now, and the most at once so far. */
  get active(): number {
    return this.activeCount;
  }

  get maxActive(): number {
    return this.maxActiveCount;
  }

  count(predicate: (request: RecordedRequest) => boolean = () => true): number {
    return this.requests.filter(predicate).length;
  }

  /** Stops listening and cuts every connection: connecting to the port is refused until `start()`. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.close();
    for (const socket of this.sockets) socket.destroy();
    server.closeAllConnections();
    if (server.listening) await once(server, 'close');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = performance.now();
    const behaviour = this.byPath.get(req.url ?? '') ?? this.queue.shift() ?? this.fallback;
    this.activeCount += 1;
    this.maxActiveCount = Math.max(this.maxActiveCount, this.activeCount);
    res.once('close', () => (this.activeCount -= 1));
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const socket = req.socket as Socket & {
      getPeerCertificate?: () => { subject?: { CN?: string } };
      servername?: string | false;
    };
    this.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      at,
      clientCertificate: socket.getPeerCertificate?.()?.subject?.CN,
      serverName: typeof socket.servername === 'string' ? socket.servername : undefined,
    });
    switch (behaviour.kind) {
      case 'hang':
        return; // never answers; stop() cuts it
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, behaviour.ms));
        if (res.destroyed) return;
        this.answer(req, res, 200);
        return;
      case 'ok':
        this.answer(req, res, behaviour.status ?? 200, behaviour.body, behaviour.headers);
        return;
    }
  }

  private answer(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body?: string,
    headers: Record<string, string> = {},
  ): void {
    const text =
      body ?? JSON.stringify({ upstream: this.name, method: req.method, url: req.url, headers: req.headers });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }
}

/** Starts `count` upstreams named `<prefix>-0`, `<prefix>-1`, ... */
export async function startUpstreams(
  count: number,
  prefix = 'up',
  options: UpstreamOptions = {},
): Promise<TestUpstream[]> {
  return Promise.all(
    Array.from({ length: count }, (_, index) =>
      new TestUpstream({ ...options, name: `${prefix}-${index}` }).start(),
    ),
  );
}

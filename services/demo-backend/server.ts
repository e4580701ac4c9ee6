import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * The example app of the quick start, and a real HTTP peer for tests:
 *   GET  /hello               a greeting
 *   ANY  /echo[/...]          method, path, query, headers and body as JSON
 *   GET  /slow?ms=N           answers after N ms (for timeouts and graceful shutdown)
 *   GET  /status/{code}       answers that status (for error handling and retries)
 *   POST /events              records the (CloudEvents) body it receives; GET /events lists them
 *   GET  /healthz             alive
 */
export interface ReceivedEvent {
  readonly receivedAt: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

export interface DemoBackend {
  readonly url: string;
  readonly port: number;
  readonly events: ReceivedEvent[];
  /** Requests received whose response has not ended yet. */
  inFlight(): number;
  close(): Promise<void>;
}

const MAX_EVENTS_KEPT = 1_000;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  if (contentType?.includes('json')) {
    try {
      return JSON.parse(raw.toString('utf8')) as unknown;
    } catch {
      return raw.toString('utf8');
    }
  }
  return raw.toString('utf8');
}

export async function startDemoBackend(options: { host?: string; port?: number } = {}): Promise<DemoBackend> {
  const events: ReceivedEvent[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    inFlight += 1;
    res.once('close', () => (inFlight -= 1));
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://demo');
    const raw = await readBody(req);
    const path = url.pathname;
    if (path === '/healthz') return sendJson(res, 200, { status: 'alive' });
    if (path === '/hello') return sendJson(res, 200, { message: 'hello from the demo backend' });
    if (path === '/echo' || path.startsWith('/echo/')) {
      return sendJson(res, 200, {
        method: req.method,
        path,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: parseBody(raw, req.headers['content-type']),
      });
    }
    if (path === '/slow') {
      const ms = Math.min(Number(url.searchParams.get('ms') ?? 1000), 600_000);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, ms);
        timers.add(timer);
      });
      return sendJson(res, 200, { sleptMs: ms });
    }
    const statusMatch = /^\/status\/(\d{3})$/.exec(path);
    if (statusMatch) {
      const status = Number(statusMatch[1]);
      return sendJson(res, status, { status });
    }
    if (path === '/events' && req.method === 'POST') {
      events.push({
        receivedAt: new Date().toISOString(),
        headers: req.headers,
        contentType: req.headers['content-type'],
        body: parseBody(raw, req.headers['content-type']),
      });
      if (events.length > MAX_EVENTS_KEPT) events.splice(0, events.length - MAX_EVENTS_KEPT);
      return sendJson(res, 200, { status: 'SUCCESS' });
    }
    if (path === '/events' && req.method === 'GET') return sendJson(res, 200, { events });
    return sendJson(res, 404, { error: `no route ${req.method ?? ''} ${path}` });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    events,
    inFlight: () => inFlight,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// Run as a program: `tsx services/demo-backend/server.ts --port 8080`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } } });
  const backend = await startDemoBackend({
    port: Number(values.port ?? 8080),
    host: values.host ?? '127.0.0.1',
  });
  process.stdout.write(`demo backend listening on ${backend.url}\n`);
  const stop = () => void backend.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

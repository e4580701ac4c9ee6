/**
 * Resets mid-body under a real sidecar process: an upstream (egress) and an app (ingress) send the
 * status, the headers and part of the body, then destroy the socket. The client must see the
 * response cut (an error or an incomplete message), never a short body presented as complete; the
 * sidecar stays up, records it, and the next request succeeds.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { CleanupStack, waitFor } from '../helpers/wait.js';

const FULL = 'x'.repeat(64 * 1024);

/** Answers `/cut-length` (Content-Length) and `/cut-chunked` with half the body and a reset; else the full body. */
async function startCuttingServer(
  cleanup: CleanupStack,
): Promise<{ url: string; served: Record<string, number> }> {
  const served: Record<string, number> = {};
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    served[path] = (served[path] ?? 0) + 1;
    req.resume();
    if (path === '/cut-length' || path === '/cut-chunked') {
      res.writeHead(200, {
        'content-type': 'text/plain',
        ...(path === '/cut-length' ? { 'content-length': String(FULL.length) } : {}),
      });
      res.write(FULL.slice(0, FULL.length / 2), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(FULL.length) });
    res.end(FULL);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.defer(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served };
}

interface Received {
  status: number;
  bytes: number;
  /** Node says the whole message arrived (Content-Length met, or the last chunk seen). */
  complete: boolean;
  error: string | undefined;
}

/** A plain node:http GET that reports what arrived and whether the message was complete. */
function get(url: string, host?: string): Promise<Received> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, headers: host ? { host } : {} }, (res) => {
      let bytes = 0;
      let error: string | undefined;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('error', (err) => (error = err.message));
      res.on('close', () =>
        resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete && error === undefined, error }),
      );
    });
    req.on('error', (err) => resolve({ status: 0, bytes: 0, complete: false, error: err.message }));
  });
}

describe('fault: reset mid-body', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('passes a cut upstream or app body on as a cut response, stays up and serves the next request', async () => {
    const upstream = await startCuttingServer(cleanup);
    const app = await startCuttingServer(cleanup);
    const sidecar: SidecarProcess = await startSidecarProcess(
      {
        admin: { host: '127.0.0.1', port: 0 },
        ingress: { host: '127.0.0.1', port: 0, target: app.url },
        bridge: { enabled: false },
        egress: { port: 0, services: { orders: { endpoints: [upstream.url], retry: { attempts: 1 } } } },
      },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => sidecar.cleanup());
    const { egress, ingress, admin } = sidecar.urls;

    const accounting: string[] = [];
    for (const [via, base, host] of [
      ['egress', egress, 'orders'],
      ['ingress', ingress, undefined],
    ] as const) {
      for (const path of ['/cut-length', '/cut-chunked']) {
        const cut = await get(`${base}${path}`, host);
        accounting.push(
          `${via}${path}: status=${cut.status} bytes=${cut.bytes}/${FULL.length} complete=${cut.complete} error=${cut.error ?? '-'}`,
        );
        assert.equal(
          cut.complete,
          false,
          `${via}${path}: the cut body must not look complete (${JSON.stringify(cut)})`,
        );
        assert.ok(cut.bytes < FULL.length, `${via}${path}: less than the full body`);
        const next = await get(`${base}/whole`, host);
        assert.deepEqual(
          { status: next.status, bytes: next.bytes, complete: next.complete },
          { status: 200, bytes: FULL.length, complete: true },
          `${via}: the next request after ${path} succeeds`,
        );
        accounting.push(`${via}/whole after: status=${next.status} complete=${next.complete}`);
      }
    }
    assert.deepEqual(upstream.served, { '/cut-length': 1, '/cut-chunked': 1, '/whole': 2 });
    assert.deepEqual(app.served, { '/cut-length': 1, '/cut-chunked': 1, '/whole': 2 });

    const health = await request(`${admin}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    assert.equal(sidecar.proc.exitCode, null, 'the sidecar still runs');

    // What records it: the access log line of each cut response says `aborted: true` (no metric does).
    const access = (listener: string, url: string) =>
      sidecar.logs.filter((line) => line.msg === 'access' && line.listener === listener && line.url === url);
    // An access line is written when the response closes and reaches this process through the
    // sidecar's stdout: it may trail the response the client already has.
    await waitFor(
      () =>
        ['egress', 'ingress'].every(
          (listener) =>
            access(listener, '/whole').length >= 2 &&
            access(listener, '/cut-length').length >= 1 &&
            access(listener, '/cut-chunked').length >= 1,
        ),
      { timeoutMs: 10_000, what: 'the access line of every request' },
    );
    const abortedLines: string[] = [];
    for (const listener of ['egress', 'ingress']) {
      for (const url of ['/cut-length', '/cut-chunked']) {
        const lines = access(listener, url);
        assert.deepEqual(
          lines.map((line) => line.aborted),
          [true],
          `${listener}${url}: one access line marked aborted`,
        );
        abortedLines.push(
          `${listener}${url} aborted=${String(lines[0].aborted)} status=${String(lines[0].status)}`,
        );
      }
      assert.deepEqual(
        access(listener, '/whole').map((line) => [line.aborted, line.status]),
        [
          [false, 200],
          [false, 200],
        ],
      );
    }
    console.log(`      reset-mid-body:\n        ${accounting.join('\n        ')}`);
    console.log(`      access log: ${abortedLines.join('; ')}; admin /healthz 200`);
  });
});

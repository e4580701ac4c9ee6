/**
 * The floor of a Node.js proxy, measured next to the sidecar: a node:http server relaying every
 * request to one origin over an undici keep-alive Pool through the dispatch handler API (what
 * `proxy/shared/upstream.ts` does), hop-by-hop headers dropped — and nothing else: no routing,
 * request id, forwarding headers, metrics, access log, timeouts or policies. It runs with the
 * sidecar's Node flags, so the sidecar's distance to it is what the sidecar's own code costs, and
 * its distance to nginx/haproxy what the runtime costs on this machine.
 *
 *   node [flags] --import tsx bench/bare-forwarder.ts <origin>     prints "listening on <url>"
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { withoutHopByHop } from '../proxy/shared/headers.js';

const origin = process.argv[2];
if (origin === undefined) throw new Error('usage: bare-forwarder.ts <origin>');
const pool = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000 });

const server = createServer((req, res) => {
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onResponseStart(_controller, statusCode, headers) {
      res.writeHead(statusCode, withoutHopByHop(headers));
    },
    onResponseData(controller, chunk) {
      if (!res.write(chunk)) {
        controller.pause();
        res.once('drain', () => controller.resume());
      }
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError(_controller, err) {
      res.destroy(err);
    },
  };
  pool.dispatch(
    {
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: withoutHopByHop(req.headers, 'host') as Record<string, string>,
      body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
    },
    handler,
  );
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}`);
});
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));

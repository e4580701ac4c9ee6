/**
 * Protocol upgrades (WebSocket and the like) through the proxies, as Envoy and Linkerd pass them:
 * the upgrade request travels like any request (same policies, forwarding headers, trace context;
 * the `Upgrade` header goes to the upstream through undici's `upgrade` option, hop-by-hop headers
 * being dropped), and when the upstream answers 101 the client's connection and the upstream's
 * are joined byte for byte until either side closes. Any other answer is relayed as a response.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { REQUEST_ID_HEADER } from '../../services/runtime/http.js';
import { withoutHopByHop } from './headers.js';
import type { UpstreamBody } from './upstream.js';

/**
 * The protocol a request asks to switch to, for undici's `upgrade` dispatch option; undefined for
 * a plain request (node:http marks an upgrade request only on a listener that accepts upgrades).
 */
export function upgradeOf(req: IncomingMessage): string | undefined {
  const protocol = req.headers.upgrade;
  // node:http's own flag (not in @types/node): true when the request came through 'upgrade'.
  const upgrading = (req as IncomingMessage & { upgrade?: boolean }).upgrade === true;
  return upgrading && typeof protocol === 'string' && protocol.length > 0 ? protocol : undefined;
}

/**
 * When the upstream switched protocols (`upstream.body.upgraded`), answers the client with its
 * 101 (its headers, hop-by-hop ones rebuilt for this hop, and the request id) and joins the two
 * connections; an error or close on either side closes both. False for any other answer, which the
 * caller relays as a response.
 */
export function joinIfUpgraded(
  res: ServerResponse,
  upstream: { readonly headers: IncomingHttpHeaders; readonly body: UpstreamBody },
  requestId: string,
): boolean {
  const socket = upstream.body.upgraded;
  if (socket === undefined) return false;
  const client = res.socket;
  if (client === null || client.destroyed || socket.destroyed) {
    // One side is gone already (its `close` may have passed): nothing to join.
    socket.destroy();
    if (client !== null && !res.headersSent) client.destroy();
    return true;
  }
  const upstreamHeaders = upstream.headers;
  const headers = withoutHopByHop(upstreamHeaders);
  headers[REQUEST_ID_HEADER] = requestId;
  headers.connection = 'upgrade';
  if (upstreamHeaders.upgrade !== undefined) headers.upgrade = upstreamHeaders.upgrade;
  // A 1xx response has no body: `end()` writes the head alone, and the listener leaves the
  // connection open after a 101 (services/runtime/http.ts).
  res.writeHead(101, headers);
  res.end();
  const closeBoth = () => {
    client.destroy();
    socket.destroy();
  };
  socket.on('error', closeBoth);
  client.on('error', closeBoth);
  socket.once('close', closeBoth);
  client.once('close', closeBoth);
  socket.pipe(client);
  client.pipe(socket);
  return true;
}

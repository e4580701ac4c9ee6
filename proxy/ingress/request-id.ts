import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestIdOf, responseCompleted } from '../../services/runtime/http.js';
import { CallSignal } from '../shared/signal.js';
import type { IngressContext } from './context.js';

/**
 * Step 1: keep the caller's `x-request-id` or make one, and open the request's context. Every
 * response of the ingress echoes the id: forward() and the refusals write it with their head.
 */
export function startContext(req: IncomingMessage, res: ServerResponse): IngressContext {
  const requestId = requestIdOf(req);
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const gone = new CallSignal();
  res.on('close', () => {
    if (!responseCompleted(res))
      gone.abort(new Error('the client closed the connection before the response ended'));
  });
  return {
    req,
    res,
    requestId,
    clientAddress: req.socket.remoteAddress,
    gone,
    method: req.method ?? 'GET',
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    route: 'forward',
    operation: undefined,
    miss: undefined,
    pathParams: {},
    claims: undefined,
    body: null,
  };
}

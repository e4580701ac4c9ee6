import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * Writes an upstream body into the response and ends it, pausing the body while the response's
 * buffer is full; an upstream error destroys the response. Nothing stops the body when the client
 * goes away: the caller's `close` listener does (see `relay`).
 *
 * Not `body.pipe(res)`: pipe puts five listeners on the response and two on the body, and undoes
 * them at the end, for every request (a few per cent of a small request's CPU); this puts three on
 * the body and one `drain` on the response only when it is full. Not `stream/promises.pipeline`
 * either: on Node 20 it creates and aborts an AbortController per call (a DOMException each time),
 * which measured about a tenth of the proxy's CPU per request.
 */
export function pump(body: Readable, res: ServerResponse): void {
  const onDrain = () => body.resume();
  body.on('data', (chunk: Buffer) => {
    if (!res.write(chunk)) {
      body.pause();
      res.once('drain', onDrain);
    }
  });
  body.once('end', () => res.end());
  body.once('error', (err) => res.destroy(err));
}

/**
 * Streams an upstream body into the response. Resolves when the response has finished, rejects
 * when the upstream body fails (the response is then destroyed), and stops reading the upstream
 * when the client goes away.
 */
export function relay(body: Readable, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    body.once('error', reject);
    // A response emits `close` after `finish`, and alone when the connection is cut.
    res.once('close', () => {
      if (res.writableFinished) {
        resolve();
        return;
      }
      body.destroy();
      reject(new Error('the client closed the connection before the response ended'));
    });
    pump(body, res);
  });
}

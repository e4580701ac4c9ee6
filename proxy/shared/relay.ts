import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * Streams an upstream body into the response. Resolves when the response has finished, rejects
 * when the upstream body fails (the response is then destroyed), and stops reading the upstream
 * when the client goes away.
 *
 * Not `stream/promises.pipeline`: on Node 20 it creates and aborts an AbortController per call
 * (a DOMException each time), which measured about a tenth of the proxy's CPU per request.
 */
export function relay(body: Readable, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    body.once('error', (err) => {
      res.destroy(err);
      reject(err);
    });
    res.once('finish', () => resolve());
    res.once('close', () => {
      if (res.writableFinished) {
        resolve();
        return;
      }
      body.destroy();
      reject(new Error('the client closed the connection before the response ended'));
    });
    body.pipe(res);
  });
}

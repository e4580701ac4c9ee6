import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppClient, parseRetryAfter } from './delivery.js';

describe('push delivery (AppClient)', () => {
  let server: Server | undefined;
  let client: AppClient | undefined;
  afterEach(async () => {
    await client?.destroy();
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
    client = undefined;
  });

  async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/base`;
  }

  it('posts to target path + subscription path and reads the answer', async () => {
    let seenPath = '';
    const target = await listen((req, res) => {
      seenPath = req.url ?? '';
      res
        .writeHead(429, { 'retry-after': '2', 'content-type': 'application/json' })
        .end('{"status":"RETRY"}');
    });
    client = new AppClient(target);
    const result = await client.post(
      client.pathFor('/events'),
      '{}',
      { 'content-type': 'application/cloudevents+json' },
      5_000,
    );
    assert.equal(seenPath, '/base/events');
    assert.deepEqual(result, {
      kind: 'answer',
      status: 429,
      body: '{"status":"RETRY"}',
      contentType: 'application/json',
      retryAfterMs: 2_000,
    });
  });

  it('tells a refused connection (app down) from a timeout (retry)', async () => {
    const target = await listen((_req, _res) => {
      // never answers
    });
    client = new AppClient(target);
    const timedOut = await client.post('/x', '{}', {}, 100);
    assert.equal(timedOut.kind, 'failed');
    await client.destroy();
    server!.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    client = new AppClient(target);
    const refused = await client.post('/x', '{}', {}, 1_000);
    assert.equal(refused.kind, 'app-down');
  });

  it('parses Retry-After as seconds or a date', () => {
    assert.equal(parseRetryAfter('3'), 3_000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});

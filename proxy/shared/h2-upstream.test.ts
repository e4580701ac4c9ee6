import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import { H2Origin } from './h2-upstream.js';
import { CallSignal } from './signal.js';
import { sendUpstream } from './upstream.js';

/**
 * A TCP relay in front of `target` whose existing connections can be frozen: their bytes stop
 * flowing both ways with no FIN or RST (a host gone, a NAT that dropped the flow), while new
 * connections work.
 */
async function startRelay(target: number) {
  const pairs: [Socket, Socket][] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    for (const socket of [client, upstream]) socket.on('error', () => undefined);
    pairs.push([client, upstream]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => pairs.length,
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close() {
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      server.close();
    },
  };
}

describe('H2Origin', () => {
  it('ends a session whose connection stopped answering PINGs, and the next call opens a new one', async () => {
    const app = http2.createServer((_req, res) => res.end('ok'));
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const relay = await startRelay((app.address() as AddressInfo).port);
    const origin = new H2Origin(relay.url, {
      headersTimeout: 0,
      bodyTimeout: 0,
      keepalive: { intervalMs: 30, timeoutMs: 60 },
    });
    const get = async () => {
      const response = await sendUpstream(origin, { path: '/', method: 'GET', headers: {} });
      response.body.discard();
      return response.statusCode;
    };
    try {
      assert.equal(await get(), 200);
      relay.freeze();
      // Without the PING the call would wait on the dead connection for as long as TCP takes.
      await assert.rejects(get(), /did not answer a PING within 60 ms/);
      assert.equal(await get(), 200);
      assert.equal(relay.connections(), 2);
    } finally {
      await origin.destroy();
      relay.close();
      app.close();
    }
  });

  it('pings only while streams are open, and not at all with intervalMs 0', async () => {
    // Apps counting the PINGs they get, each with a path that is never answered (an open stream).
    const startApp = async () => {
      const app = http2.createServer((req, res) => {
        if (req.url !== '/hang') res.end('ok');
      });
      let pings = 0;
      app.on('session', (session: http2.ServerHttp2Session) => session.on('ping', () => (pings += 1)));
      app.listen(0, '127.0.0.1');
      await once(app, 'listening');
      return { app, url: `http://127.0.0.1:${(app.address() as AddressInfo).port}`, pings: () => pings };
    };
    const apps = { open: await startApp(), idle: await startApp(), off: await startApp() };
    const keepalive = (intervalMs: number) => ({
      headersTimeout: 0,
      bodyTimeout: 0,
      keepalive: { intervalMs, timeoutMs: 1000 },
    });
    const origins = {
      open: new H2Origin(apps.open.url, keepalive(10)),
      idle: new H2Origin(apps.idle.url, keepalive(10)),
      off: new H2Origin(apps.off.url, keepalive(0)),
    };
    const hung: Promise<unknown>[] = [];
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    try {
      hung.push(
        sendUpstream(origins.open, { path: '/hang', method: 'GET', headers: {} }).catch(() => undefined),
      );
      hung.push(
        sendUpstream(origins.off, { path: '/hang', method: 'GET', headers: {} }).catch(() => undefined),
      );
      const done = await sendUpstream(origins.idle, { path: '/', method: 'GET', headers: {} });
      done.body.discard();
      // The open stream's PINGs are the test's clock: 5 of them are at least 40 ms.
      while (apps.open.pings() < 5) await turn();
      assert.deepEqual([apps.idle.pings(), apps.off.pings()], [0, 0]);
      // A stream opening on the idle session after more than intervalMs: pinged again.
      hung.push(
        sendUpstream(origins.idle, { path: '/hang', method: 'GET', headers: {} }).catch(() => undefined),
      );
      while (apps.idle.pings() < 1) await turn();
    } finally {
      await Promise.all(Object.values(origins).map((origin) => origin.destroy()));
      await Promise.all(hung);
      for (const { app } of Object.values(apps)) app.close();
    }
  });

  it('pings at once when a stream is given up unanswered, not waiting for the interval', async () => {
    const app = http2.createServer(() => undefined);
    let pings = 0;
    app.on('session', (session: http2.ServerHttp2Session) => session.on('ping', () => (pings += 1)));
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const origin = new H2Origin(`http://127.0.0.1:${(app.address() as AddressInfo).port}`, {
      headersTimeout: 0,
      bodyTimeout: 0,
      keepalive: { intervalMs: 3_600_000, timeoutMs: 1000 },
    });
    const signal = new CallSignal();
    try {
      // Once the app has the stream, the caller gives up on it (its timeout fired).
      const arrived = once(app, 'stream');
      const call = sendUpstream(origin, { path: '/hang', method: 'GET', headers: {} }, signal);
      await arrived;
      assert.equal(pings, 0);
      signal.abort(new Error('timeout'));
      await assert.rejects(call, /timeout/);
      while (pings < 1) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(pings, 1);
    } finally {
      await origin.destroy();
      app.close();
    }
  });
});

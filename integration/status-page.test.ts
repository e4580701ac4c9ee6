/**
 * The admin status page in a real browser: Debian's chromium (headless, driven by playwright-core)
 * opens `GET /` of a real sidecar process with a real broker and a push subscription, sees the
 * subscription and its lag, then the test app stops and the page, without a reload, shows the lag
 * growing and the partitions paused. Screenshots go to integration/artifacts/ (not committed).
 * `mesh-sidecar status` is checked against the same sidecar.
 *
 * chromium missing is a failure, not a skip: `.ci/run` installs it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { BridgeClient, V2 } from './helpers/bridge-client.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { runCli, startSidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));

interface TestApp {
  url: string;
  delivered: number;
  close(): Promise<void>;
}

async function startApp(): Promise<TestApp> {
  const app: TestApp = { url: '', delivered: 0, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      app.delivered += 1;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closed: Promise<void> | undefined;
  app.close = () =>
    (closed ??= new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
  return app;
}

/** Chromium with a fresh profile directory (a persistent context is how playwright takes one). */
async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is not installed: apt-get install -y chromium (.ci/run does this in CI)`);
  }
  const profile = await mkdtemp(join(tmpdir(), 'mesh-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

interface ShownSubscription {
  state: string;
  lag: number;
  lastError: string;
  partitions: { partition: string | null; lag: string; state: string }[];
}

/**
 * What the page shows of one subscription, read from the DOM in one go (the page re-renders every
 * second). In-page code as a string: the project's TypeScript has no DOM types.
 */
function shownSubscription(page: Page, name: string): Promise<ShownSubscription | undefined> {
  return page.evaluate(`(() => {
    const card = document.querySelector('[data-subscription=${JSON.stringify(name)}]');
    if (!card) return undefined;
    const text = (selector) => (card.querySelector(selector)?.textContent ?? '').trim();
    return {
      state: text('h3 [data-field="state"]'),
      lag: Number(text('.kv [data-field="lag"]').replace(/,/g, '')),
      lastError: text('[data-field="last-error"]'),
      partitions: [...card.querySelectorAll('tr[data-partition]')].map((row) => ({
        partition: row.getAttribute('data-partition'),
        lag: (row.querySelector('[data-field="lag"]')?.textContent ?? '').trim(),
        state: (row.querySelector('[data-field="state"]')?.textContent ?? '').trim(),
      })),
    };
  })()`);
}

describe('admin status page in a browser (sidecar process, real broker)', function () {
  this.timeout(120_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it('shows a subscription and its lag, then lag and the paused state after the app stops, without a reload', async () => {
    await mkdir(artifacts, { recursive: true });
    const topic = await suite.kafka.createTopic(uniqueName('status-page'), 2);
    const group = uniqueName('status-page-group');
    const app = await startApp();
    cleanup.defer(() => app.close());
    const sidecar = await startSidecarProcess(
      {
        admin: { port: 0, host: '127.0.0.1' },
        ingress: { port: 0, host: '127.0.0.1', target: app.url },
        egress: { enabled: false },
        kafka: { bootstrap: suite.kafka.brokers },
        shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
        subscriptions: [
          {
            name: 'orders',
            topics: [topic],
            group,
            path: '/events/orders',
            autoOffsetReset: 'earliest',
            commitIntervalMs: 200,
            retry: { maxAttempts: 3, initialBackoffMs: 200, maxBackoffMs: 4_000 },
          },
        ],
      },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => sidecar.cleanup());

    const producer = suite.kafka.producer();
    await producer.connect();
    const produce = (count: number, from: number) =>
      producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: count }, (_, i) => ({
          key: `key-${from + i}`,
          value: JSON.stringify({ n: from + i }),
        })),
      });
    await produce(6, 0);
    await waitFor(() => app.delivered >= 6, { timeoutMs: 30_000, what: 'the first 6 records delivered' });

    const chrome = await launchChromium();
    cleanup.defer(() => chrome.close());
    const page = await chrome.context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const response = await page.goto(`${sidecar.urls.admin}/`);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-type'] ?? '', /^text\/html/);
    // Set once; a reload would lose it.
    await page.evaluate(`window.loadMarker = 'first load'`);

    const running = await waitFor(
      async () => {
        const shown = await shownSubscription(page, 'orders');
        return shown &&
          shown.state === 'running' &&
          shown.partitions.length === 2 &&
          shown.partitions.every((p) => p.lag === '0')
          ? shown
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'subscription running with lag 0 on both partitions' },
    );
    assert.equal(running.lag, 0);
    assert.deepEqual(running.partitions.map((p) => p.partition).sort(), [`${topic}/0`, `${topic}/1`]);
    assert.equal(running.lastError, 'no delivery error');
    assert.match((await page.textContent('#ready')) ?? '', /^ready$/);
    assert.match((await page.textContent('[data-subscription="orders"] .kv')) ?? '', new RegExp(group));
    await page.screenshot({ path: join(artifacts, 'status-page-running.png'), fullPage: true });

    // The app goes away; records keep coming.
    await app.close();
    await produce(20, 6);
    const down = await waitFor(
      async () => {
        const shown = await shownSubscription(page, 'orders');
        // Per partition: "paused" where the subscription tells which ones are, "unknown" where it
        // only reports how many (mesh_subscription_paused_partitions); never "running" for all.
        const partitionsPaused =
          shown?.partitions.some((p) => p.state === 'paused') ||
          shown?.partitions.every((p) => p.state === 'unknown');
        return shown &&
          shown.lag >= 20 &&
          shown.state === 'paused' &&
          partitionsPaused &&
          /app down/.test(shown.lastError)
          ? shown
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'lag ≥ 20 and the paused state on the page' },
    );
    assert.equal(down.partitions.length, 2, JSON.stringify(down.partitions));
    assert.ok(
      down.partitions.every((p) => Number(p.lag) >= 0),
      JSON.stringify(down.partitions),
    );
    assert.equal(
      await page.evaluate<string | undefined>('window.loadMarker'),
      'first load',
      'the page was not reloaded',
    );
    assert.match((await page.textContent('#live')) ?? '', /^live/);
    await page.screenshot({ path: join(artifacts, 'status-page-app-down.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);

    // The terminal view of the same document.
    const cli = await runCli(['status', '--admin', sidecar.urls.admin]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      /Push subscriptions\n {2}orders {2}group \S+ {2}topics \S+ {2}lag \d+ {2}PAUSED/,
    );
    assert.match(cli.stdout, /last delivery error at .*app down/);
    assert.match(cli.stdout, /NOT READY|READY/);
  });
  it('GET /status lists the bridge and its pull consumer instances with their partitions', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('status-pull'), 1);
    const group = uniqueName('status-pull-group');
    const sidecar = await startSidecarProcess(
      {
        admin: { port: 0, host: '127.0.0.1' },
        ingress: { enabled: false },
        egress: { enabled: false },
        bridge: { enabled: true, port: 0 },
        kafka: { bootstrap: suite.kafka.brokers },
        shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
      },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => sidecar.cleanup());
    const bridge = new BridgeClient(sidecar.urls.bridge);
    const created = await bridge.call(`/consumers/${group}`, {
      method: 'POST',
      contentType: V2,
      body: { name: 'c1', format: 'json', 'auto.offset.reset': 'earliest' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    cleanup.defer(() =>
      bridge.call(`/consumers/${group}/instances/c1`, { method: 'DELETE', contentType: V2 }),
    );
    const subscribed = await bridge.call(`/consumers/${group}/instances/c1/subscription`, {
      method: 'POST',
      contentType: V2,
      body: { topics: [topic] },
    });
    assert.equal(subscribed.status, 204);
    const consumer = await waitFor(
      async () => {
        const status = (await (await fetch(`${sidecar.urls.admin}/status`)).json()) as {
          components: { bridge?: { kafkaConnected: boolean; pullConsumers: Record<string, unknown>[] } };
        };
        const found = status.components.bridge?.pullConsumers.find((c) => c.name === 'c1');
        // The bridge's producer connects in the background: the consumer may get its partition first.
        const connected = status.components.bridge?.kafkaConnected === true;
        return connected && found && (found.partitions as unknown[]).length === 1
          ? { status, found }
          : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: 'Kafka connected and the pull consumer with its partition in GET /status',
      },
    );
    assert.equal(consumer.found.group, group);
    assert.equal(consumer.found.format, 'json');
    assert.equal(consumer.found.mode, 'subscribe');
    assert.deepEqual(consumer.found.topics, [topic]);
    assert.deepEqual(consumer.found.partitions, [{ topic, partition: 0 }]);
  });
});

/**
 * SIGTERM of the sidecar process under mixed load: ingress requests, egress calls, bridge produce
 * and push delivery all running. Exact accounting per kind (sent / acknowledged / delivered /
 * lost / cut), printed:
 * - no request cut mid-way: everything the app answered reached its caller complete, and every
 *   record Kafka holds was acknowledged to its producer;
 * - no acknowledged record lost; every pushed record delivered at least once (a second member
 *   of the group finishes what the drained one left);
 * - exit 0, without reaching the shutdown timeout.
 * (Single-kind drains are in lifecycle.test.ts and push-failure.test.ts.)
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { kafkaSuite, uniqueName } from '../helpers/kafka.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

interface App {
  readonly url: string;
  /** Request ids the app finished answering, by the path they came on. */
  readonly answered: { ingress: Set<string>; egress: Set<string> };
  /** Push deliveries per CloudEvent id. */
  readonly delivered: Map<string, number>;
  close(): Promise<void>;
}

async function startApp(): Promise<App> {
  const answered = { ingress: new Set<string>(), egress: new Set<string>() };
  const delivered = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://app');
      if (url.pathname === '/events') {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string };
        setTimeout(() => {
          delivered.set(event.id, (delivered.get(event.id) ?? 0) + 1);
          res.writeHead(204).end();
        }, 10);
        return;
      }
      const id = url.searchParams.get('id') ?? '';
      const via = url.pathname.startsWith('/egress') ? 'egress' : 'ingress';
      setTimeout(
        () => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
          res.once('finish', () => answered[via].add(id));
        },
        30 + Math.floor(Math.random() * 120),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answered,
    delivered,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Tally {
  sent: number;
  ok: number;
  refused: number;
  other: string[];
}
const tally = (): Tally => ({ sent: 0, ok: 0, refused: 0, other: [] });

/** A refusal the caller can retry safely: the sidecar did not take the request on. */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE'].includes(code);
}

describe('SIGTERM under mixed load (sidecar process, real broker)', function () {
  this.timeout(120_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it('drains ingress, egress, produce and push: nothing cut, no acknowledged record lost, exit 0', async () => {
    const produceTopic = await suite.kafka.createTopic(uniqueName('term-produce'), 3);
    const pushTopic = await suite.kafka.createTopic(uniqueName('term-push'), 3);
    const group = uniqueName('term-group');
    const app = await startApp();
    cleanup.defer(() => app.close());
    const config = {
      admin: { host: '127.0.0.1', port: 0 },
      ingress: { host: '127.0.0.1', port: 0, target: app.url, timeoutMs: 10_000 },
      egress: { port: 0, services: { orders: { endpoints: [app.url] } } },
      bridge: { enabled: true, port: 0 },
      kafka: { bootstrap: suite.kafka.brokers },
      subscriptions: [
        {
          name: 'orders',
          topics: [pushTopic],
          group,
          path: '/events',
          autoOffsetReset: 'earliest',
          commitIntervalMs: 200,
        },
      ],
      shutdown: { drainDelayMs: 300, timeoutMs: 20_000 },
      log: { level: 'info' },
    };
    const sidecar: SidecarProcess = await startSidecarProcess(config, { startTimeoutMs: 30_000 });
    cleanup.defer(() => sidecar.cleanup());
    const { ingress, egress, bridge } = sidecar.urls;
    await waitFor(
      async () => {
        const res = await request(`${sidecar.urls.admin}/readyz`);
        await res.body.dump();
        return res.statusCode === 200;
      },
      { timeoutMs: 30_000, what: 'ready' },
    );

    let stop = false;
    const stats = { ingress: tally(), egress: tally(), produce: tally() };
    const received = { ingress: new Set<string>(), egress: new Set<string>() };
    const acked = new Set<string>();
    let requestSeq = 0;

    const httpLoop = async (kind: 'ingress' | 'egress') => {
      while (!stop) {
        const id = `${kind}-${requestSeq++}`;
        const url = kind === 'ingress' ? `${ingress}/ingress?id=${id}` : `${egress}/egress?id=${id}`;
        stats[kind].sent += 1;
        try {
          // A connection per request: the client never races a keep-alive close.
          const res = await request(url, {
            reset: true,
            ...(kind === 'egress' ? { headers: { host: 'orders' } } : {}),
          });
          const text = await res.body.text();
          if (res.statusCode === 200) {
            stats[kind].ok += 1;
            received[kind].add((JSON.parse(text) as { id: string }).id);
          } else if (res.statusCode === 503) stats[kind].refused += 1;
          else stats[kind].other.push(`${res.statusCode} ${text.slice(0, 100)}`);
        } catch (err) {
          if (isRefusal(err)) stats[kind].refused += 1;
          else stats[kind].other.push(String(err));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };

    let batchSeq = 0;
    const produceLoop = async () => {
      while (!stop) {
        const batch = batchSeq++;
        const values = Array.from({ length: 5 }, (_, i) => `p${batch}-${i}`);
        stats.produce.sent += values.length;
        try {
          const res = await request(`${bridge}/topics/${produceTopic}`, {
            method: 'POST',
            reset: true,
            headers: { 'content-type': 'application/vnd.kafka.text.v2+json' },
            body: JSON.stringify({ records: values.map((value) => ({ key: value, value })) }),
          });
          const body = (await res.body.json()) as { offsets?: { offset?: number }[] };
          if (res.statusCode === 200 || (res.statusCode === 503 && Array.isArray(body.offsets))) {
            body.offsets!.forEach((entry, i) => {
              if (typeof entry.offset === 'number') {
                acked.add(values[i]);
                stats.produce.ok += 1;
              } else stats.produce.refused += 1;
            });
          } else if (res.statusCode === 503) stats.produce.refused += values.length;
          else stats.produce.other.push(`${res.statusCode} ${JSON.stringify(body).slice(0, 100)}`);
        } catch (err) {
          if (isRefusal(err)) stats.produce.refused += values.length;
          else stats.produce.other.push(String(err));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };

    // Push load: records go straight to Kafka; the sidecar delivers them to /events.
    const producer = suite.kafka.producer();
    await producer.connect();
    let pushed = 0;
    const pushLoop = async () => {
      while (!stop) {
        const messages = Array.from({ length: 20 }, (_, i) => ({
          key: `k${(pushed + i) % 7}`,
          value: `e${pushed + i}`,
        }));
        await producer.send({ topic: pushTopic, messages, acks: -1 });
        pushed += messages.length;
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
    };

    const loops = [
      httpLoop('ingress'),
      httpLoop('ingress'),
      httpLoop('egress'),
      httpLoop('egress'),
      produceLoop(),
      produceLoop(),
      pushLoop(),
    ];
    await waitFor(
      () => stats.ingress.ok >= 30 && stats.egress.ok >= 30 && acked.size >= 50 && app.delivered.size >= 50,
      { timeoutMs: 30_000, what: 'every kind of load under way' },
    );

    sidecar.proc.kill('SIGTERM');
    const code = await sidecar.exited;
    stop = true;
    await Promise.all(loops);

    // What the drained member left undelivered, a second member of the group delivers.
    const successor = await startSidecarProcess(
      { ...config, ingress: { ...config.ingress }, egress: { enabled: false }, bridge: { enabled: false } },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => successor.cleanup());
    await waitFor(() => app.delivered.size >= pushed, {
      timeoutMs: 45_000,
      what: `all ${pushed} pushed records delivered (have ${app.delivered.size})`,
    });

    const inTopic = await suite.kafka.readTopic(produceTopic, acked.size, { timeoutMs: 30_000 });
    const values = new Set(inTopic.map((record) => record.value!.toString()));
    const lost = [...acked].filter((value) => !values.has(value));
    const unacknowledgedWritten = [...values].filter((value) => !acked.has(value));
    const cut = {
      ingress: [...app.answered.ingress].filter((id) => !received.ingress.has(id)),
      egress: [...app.answered.egress].filter((id) => !received.egress.has(id)),
    };
    const duplicates = [...app.delivered.values()].reduce((sum, n) => sum + n - 1, 0);
    for (const kind of ['ingress', 'egress'] as const) {
      const s = stats[kind];
      console.log(
        `      ${kind}: sent ${s.sent}, answered ${s.ok}, refused ${s.refused}, answered by the app ${app.answered[kind].size}, cut ${cut[kind].length}, other ${s.other.length}`,
      );
    }
    console.log(
      `      produce: records sent ${stats.produce.sent}, acknowledged ${acked.size}, refused ${stats.produce.refused}, in the topic ${values.size}, lost ${lost.length}, written unacknowledged ${unacknowledgedWritten.length}`,
    );
    console.log(
      `      push: records ${pushed}, delivered ${app.delivered.size}, duplicates ${duplicates}, lost ${pushed - app.delivered.size}; exit ${code}`,
    );

    assert.equal(code, 0, 'exit 0');
    assert.ok(
      !sidecar.logs.some((line) => line.msg === 'shutdown timeout reached; stopping what is left'),
      'drained within the shutdown timeout',
    );
    assert.deepEqual(stats.ingress.other, [], 'ingress: only answers and refusals');
    assert.deepEqual(stats.egress.other, [], 'egress: only answers and refusals');
    assert.deepEqual(stats.produce.other, [], 'produce: only answers and refusals');
    assert.deepEqual(cut, { ingress: [], egress: [] }, 'nothing the app answered was cut on the way back');
    assert.deepEqual(lost, [], 'no acknowledged record lost');
    assert.deepEqual(unacknowledgedWritten, [], 'no produce request cut after Kafka took its records');
    assert.equal(await suite.kafka.recordCount(produceTopic), values.size, 'each record once');
    assert.equal(app.delivered.size, pushed, 'every pushed record delivered at least once');
  });
});

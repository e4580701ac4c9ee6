/**
 * Push subscriptions under failure, with real sidecar processes in one consumer group: a SIGKILL
 * mid-stream loses nothing (at least once, order per key), a SIGTERM drains without loss and
 * without redelivering what was acknowledged.
 *
 * The SIGKILL test runs the 10,000 keyed records the issue asks for (about 18 s here, most of it the
 * 10 s session timeout a killed member holds its partitions for); PUSH_KILL_RECORDS changes the
 * count.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait.js';

const KILL_RECORDS = Number(process.env['PUSH_KILL_RECORDS'] ?? 10_000);

interface CountingApp {
  readonly url: string;
  /** Deliveries per event id. */
  readonly seen: Map<string, number>;
  /** Per key, the sequence numbers in delivery order (duplicates included). */
  readonly perKey: Map<string, number[]>;
  /** Every delivery in arrival order, with the path it came to (which tells the members apart). */
  readonly log: { id: string; path: string }[];
  deliveries: number;
  close(): Promise<void>;
}

async function startCountingApp(): Promise<CountingApp> {
  const app = {
    url: '',
    seen: new Map<string, number>(),
    perKey: new Map<string, number[]>(),
    log: [] as { id: string; path: string }[],
    deliveries: 0,
    close: () => Promise.resolve(),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        id: string;
        data: { key: string; seq: number };
      };
      app.deliveries += 1;
      app.log.push({ id: event.id, path: req.url ?? '' });
      app.seen.set(event.id, (app.seen.get(event.id) ?? 0) + 1);
      const list = app.perKey.get(event.data.key) ?? [];
      list.push(event.data.seq);
      app.perKey.set(event.data.key, list);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  app.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return app;
}

/** Partitions the member's subscription holds since its latest join (from its log). */
function partitionsOf(member: SidecarProcess): number {
  const joined = member.logs.filter((line) => line.msg === 'subscription joined its group').at(-1);
  const assignment = (joined?.assignment ?? {}) as Record<string, number[]>;
  return Object.values(assignment).reduce((sum, partitions) => sum + partitions.length, 0);
}

/** Per key, the first deliveries of each sequence number must come in increasing order. */
function assertOrderPerKey(app: CountingApp): void {
  for (const [key, seqs] of app.perKey) {
    const firsts: number[] = [];
    const seen = new Set<number>();
    for (const seq of seqs) {
      if (seen.has(seq)) continue;
      seen.add(seq);
      firsts.push(seq);
    }
    assert.deepEqual(
      firsts,
      [...firsts].sort((a, b) => a - b),
      `order of key ${key}`,
    );
    for (let i = 0; i < seqs.length; i++) {
      // A redelivery restarts from an earlier record, never skips one: seq n is preceded by n-1.
      if (seqs[i] > 0)
        assert.ok(seqs.slice(0, i).includes(seqs[i] - 1), `key ${key}: ${seqs[i]} before ${seqs[i] - 1}`);
    }
  }
}

describe('push subscriptions under failure (sidecar processes)', function () {
  this.timeout(90_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  function sidecarConfig(app: CountingApp, topic: string, group: string, path = '/events') {
    return {
      admin: { port: 0, host: '127.0.0.1' },
      ingress: { port: 0, host: '127.0.0.1', target: app.url },
      egress: { enabled: false },
      kafka: { bootstrap: suite.kafka.brokers },
      shutdown: { drainDelayMs: 0, timeoutMs: 15_000 },
      log: { level: 'info' },
      subscriptions: [
        {
          name: 'orders',
          topics: [topic],
          group,
          path,
          ordering: 'key',
          maxConcurrency: 8,
          autoOffsetReset: 'earliest',
          commitIntervalMs: 200,
        },
      ],
    };
  }

  async function startMember(config: unknown): Promise<SidecarProcess> {
    const member = await startSidecarProcess(config, { startTimeoutMs: 30_000 });
    cleanup.defer(() => member.cleanup());
    return member;
  }

  /** Produces `count` records over `keys` keys (value: key and per-key sequence) in chunks. */
  async function produceKeyed(topic: string, count: number, keys: number, chunk = 250): Promise<void> {
    const producer = suite.kafka.producer();
    await producer.connect();
    const next = new Map<string, number>();
    for (let start = 0; start < count; start += chunk) {
      const messages = [];
      for (let i = start; i < Math.min(count, start + chunk); i++) {
        const key = `key-${i % keys}`;
        const seq = next.get(key) ?? 0;
        next.set(key, seq + 1);
        messages.push({ key, value: JSON.stringify({ key, seq }) });
      }
      await producer.send({ topic, messages, acks: -1 });
    }
  }

  it(`loses nothing when one of two members is SIGKILLed mid-stream (${KILL_RECORDS} keyed records)`, async () => {
    const topic = await suite.kafka.createTopic(uniqueName('push-kill'), 6);
    const group = uniqueName('push-kill-group');
    const app = await startCountingApp();
    cleanup.defer(() => app.close());
    const config = sidecarConfig(app, topic, group);
    const first = await startMember(config);
    await startMember(config);
    const producing = produceKeyed(topic, KILL_RECORDS, 50);
    await waitFor(() => app.seen.size >= KILL_RECORDS / 4, {
      timeoutMs: 30_000,
      what: 'a quarter delivered',
    });
    first.proc.kill('SIGKILL');
    assert.equal(await first.exited, 'SIGKILL');
    await startMember(config); // restarted
    await producing;
    await waitFor(() => app.seen.size === KILL_RECORDS, {
      timeoutMs: 60_000,
      what: `all ${KILL_RECORDS} records delivered (have ${app.seen.size})`,
    });
    assertOrderPerKey(app);
    const duplicates = app.deliveries - app.seen.size;
    console.log(
      `      SIGKILL: ${KILL_RECORDS} records, ${app.deliveries} deliveries, ${duplicates} duplicates`,
    );
  });

  it('drains on SIGTERM under load: exits 0, loses nothing, redelivers nothing the drained member acknowledged', async () => {
    const records = 2_000;
    const topic = await suite.kafka.createTopic(uniqueName('push-term'), 4);
    const group = uniqueName('push-term-group');
    const app = await startCountingApp();
    cleanup.defer(() => app.close());
    // Same group and topic; the path tells the app which member delivered.
    const leaving = await startMember(sidecarConfig(app, topic, group, '/events/leaving'));
    const staying = await startMember(sidecarConfig(app, topic, group, '/events/staying'));
    // Both members in the group before any record: a rebalance still under way at SIGTERM (the
    // second member's join) revokes partitions with deliveries in flight, whose records the new
    // owner then delivers again: at least once, but not what this test is about.
    await waitFor(() => partitionsOf(leaving) > 0 && partitionsOf(staying) > 0, {
      timeoutMs: 30_000,
      what: 'the group split between the two members',
    });
    const producing = produceKeyed(topic, records, 40);
    await waitFor(() => app.seen.size >= records / 4, { timeoutMs: 30_000, what: 'a quarter delivered' });
    leaving.proc.kill('SIGTERM');
    assert.equal(await leaving.exited, 0);
    assert.ok(leaving.logs.some((line) => line.msg === 'subscription drained'));
    const exitedAt = app.log.length;
    await producing;
    await waitFor(() => app.seen.size === records, {
      timeoutMs: 30_000,
      what: `all ${records} records delivered (have ${app.seen.size})`,
    });
    assertOrderPerKey(app);
    // The drain guarantee: every record the leaving member had delivered (and the app acknowledged)
    // was committed before it left, so no one delivers it again. (The staying member may still
    // redeliver a few of its own records whose commit the rebalance overtook: at least once.)
    const deliveredByLeaving = new Set(
      app.log
        .slice(0, exitedAt)
        .filter((d) => d.path === '/events/leaving')
        .map((d) => d.id),
    );
    const redelivered = app.log.slice(exitedAt).filter((d) => deliveredByLeaving.has(d.id));
    const duplicates = app.deliveries - app.seen.size;
    console.log(
      `      SIGTERM: ${records} records, ${app.deliveries} deliveries, ${duplicates} duplicates, ` +
        `${deliveredByLeaving.size} delivered by the drained member, ${redelivered.length} of those again`,
    );
    assert.ok(deliveredByLeaving.size > 0, 'the drained member delivered records before SIGTERM');
    // On failure, what the drained member said about rebalances, commits and its drain.
    const leavingStory = leaving.logs
      .filter(
        (line) =>
          ['warn', 'error', 'fatal'].includes(String(line.level)) ||
          /rebalanc|commit|drain|assign|join/i.test(String(line.msg)),
      )
      .map((line) => JSON.stringify(line))
      .join('\n');
    assert.deepEqual(
      redelivered,
      [],
      `a drained member commits every acknowledged record before leaving; its log:\n${leavingStory}`,
    );
  });
});

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Producer } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';
import type { AppClient, AttemptResult } from '../consumer/push/delivery.js';
import { LightmeshDelivery, type LightmeshDeliveryOptions } from './reactive.js';
import type { LightmeshSourceRecord } from './codec.js';

function records(n: number): LightmeshSourceRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    topic: 'orders',
    partition: 0,
    message: {
      key: Buffer.from(`"k${i}"`),
      value: Buffer.from(JSON.stringify({ i })),
      timestamp: '1700000000000',
      attributes: 0,
      offset: String(i),
      headers: { 'X-Correlation-Id': Buffer.from(`c${i}`) },
    },
  }));
}

const answer = (body: unknown, status = 200): AttemptResult => ({
  kind: 'answer',
  status,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const processed = (failed: number[], n: number) =>
  Array.from({ length: n }, (_, i) =>
    failed.includes(i) ? { processed: false, stacktrace: `trace ${i}` } : { processed: true },
  );

interface Harness {
  delivery: LightmeshDelivery;
  posts: string[];
  sent: { topic: string; messages: { key: unknown; headers?: Record<string, unknown> }[] }[];
  logs: string[];
  counts: Record<string, number>;
}

function harness(answers: AttemptResult[], overrides: Partial<LightmeshDeliveryOptions> = {}): Harness {
  const h = { posts: [], sent: [], logs: [], counts: {} } as unknown as Harness;
  const app = {
    post: (_path: string, body: string) => {
      h.posts.push(body);
      return Promise.resolve(
        answers.shift() ?? answer(processed([], (JSON.parse(body) as unknown[]).length)),
      );
    },
  } as unknown as AppClient;
  const producer = {
    sendBatch: ({ topicMessages }: { topicMessages: Harness['sent'] }) => {
      h.sent.push(...topicMessages);
      return Promise.resolve([]);
    },
  } as unknown as Producer;
  const log = (_obj: unknown, msg?: string) => void h.logs.push(msg ?? '');
  const logger = { warn: log, info: log, error: log, debug: log } as unknown as Logger;
  h.delivery = new LightmeshDelivery({
    settings: {
      keyFormat: 'json',
      valueFormat: 'json',
      batchRollbackThreshold: 30,
      deadLetterEnabled: true,
      deadLetterTopicExt: '.dlq',
      healthPath: '',
    },
    app,
    target: 'http://127.0.0.1:1',
    path: '/kafka/records',
    timeoutMs: 1_000,
    retry: { maxAttempts: 5, initialBackoffMs: 1, maxBackoffMs: 2 },
    deadLetterProducer: () => Promise.resolve(producer),
    logger,
    count: (result, n) => (h.counts[result] = (h.counts[result] ?? 0) + n),
    ...overrides,
  });
  return h;
}

const signal = () => new AbortController().signal;

describe('light-mesh delivery', () => {
  it('dead-letters exactly the one failed record of ten and commits', async () => {
    const h = harness([answer(processed([3], 10))]);
    const report = await h.delivery.deliver(records(10), signal());
    assert.deepEqual(report, { result: 'final', processed: 9, failed: 1 });
    assert.equal(h.posts.length, 1);
    assert.equal(h.sent.length, 1);
    assert.equal(h.sent[0].topic, 'orders.dlq');
    assert.equal(h.sent[0].messages.length, 1);
    assert.equal(String(h.sent[0].messages[0].key), '"k3"');
    assert.equal(String(h.sent[0].messages[0].headers?.StackTrace), 'trace 3');
    assert.equal(String(h.sent[0].messages[0].headers?.['X-Correlation-Id']), 'c3');
    assert.deepEqual(h.counts, { dead_letter: 1, success: 9 });
  });

  it('redelivers the whole batch when half of it failed, or on 500, or on a wrong-length answer', async () => {
    for (const first of [
      answer(processed([0, 1, 2, 3, 4], 10)),
      answer('oops', 500),
      answer(processed([], 9)),
      answer(''),
    ]) {
      const h = harness([first]);
      const report = await h.delivery.deliver(records(10), signal());
      assert.equal(report.result, 'final');
      assert.equal(h.posts.length, 2);
      assert.equal(h.posts[0], h.posts[1]);
      assert.equal(h.sent.length, 0);
      assert.equal(
        h.logs.filter((line) => line.includes('whole batch is redelivered')).length,
        1,
        h.logs.join('\n'),
      );
    }
    const wrong = harness([answer(processed([], 3))]);
    await wrong.delivery.deliver(records(2), signal());
    assert.ok(
      wrong.logs.some((line) => line.includes('3 entries for a batch of 2')),
      wrong.logs.join('\n'),
    );
  });

  it('dead-letters the whole batch once the attempts ran out, or blocks without dead letters', async () => {
    const h = harness(Array.from({ length: 5 }, () => answer('', 503)));
    const report = await h.delivery.deliver(records(3), signal());
    assert.deepEqual(report, { result: 'final', processed: 0, failed: 3 });
    assert.equal(h.posts.length, 5);
    assert.equal(h.sent[0].messages.length, 3);
    assert.match(
      String(h.sent[0].messages[0].headers?.StackTrace),
      /after 5 attempt\(s\): the backend answered HTTP 503/,
    );

    const blocked = harness(Array.from({ length: 5 }, () => answer('', 503)));
    (blocked.delivery as unknown as { options: { settings: object } }).options.settings = {
      ...(blocked.delivery as unknown as { options: { settings: object } }).options.settings,
      deadLetterEnabled: false,
    };
    assert.equal((await blocked.delivery.deliver(records(3), signal())).result, 'blocked');
    assert.equal(blocked.sent.length, 0);
  });

  it('does not dead-letter again on a last retry', async () => {
    const h = harness([answer(processed([0], 10))]);
    const report = await h.delivery.deliver(records(10), signal(), { lastRetry: true });
    assert.deepEqual(report, { result: 'final', processed: 9, failed: 1 });
    assert.equal(h.sent.length, 0);
    assert.ok(h.logs.some((line) => line.includes('not dead-lettered again')));
  });

  it('waits for a 2xx from the health path before the first batch, and stops waiting when aborted', async () => {
    const events: string[] = [];
    let checks = 0;
    const server = createServer((_req, res) => {
      checks += 1;
      events.push(`health ${checks}`);
      res.writeHead(checks <= 2 ? 503 : 200).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const settings = {
        keyFormat: 'json' as const,
        valueFormat: 'json' as const,
        batchRollbackThreshold: 30,
        deadLetterEnabled: true,
        deadLetterTopicExt: '.dlq',
        healthPath: '/health',
      };
      const h = harness([], { target, settings });
      const original = (h.delivery as unknown as { options: { app: AppClient } }).options.app;
      const post = original.post.bind(original);
      original.post = (...args: Parameters<AppClient['post']>) => {
        events.push('batch');
        return post(...args);
      };
      assert.equal((await h.delivery.deliver(records(2), signal())).result, 'final');
      assert.deepEqual(events, ['health 1', 'health 2', 'health 3', 'batch']);
      // Healthy now: the next batch goes straight out.
      await h.delivery.deliver(records(1), signal());
      assert.deepEqual(events.slice(4), ['batch']);

      checks = -1_000_000;
      const waiting = harness([], {
        target,
        settings,
        retry: { maxAttempts: 5, initialBackoffMs: 5, maxBackoffMs: 5 },
      });
      const controller = new AbortController();
      const pending = waiting.delivery.deliver(records(1), controller.signal);
      setTimeout(() => controller.abort(), 30);
      assert.equal((await pending).result, 'stopped');
      assert.equal(waiting.posts.length, 0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('hands app-down back and stops when aborted', async () => {
    const down = harness([{ kind: 'app-down', error: 'ECONNREFUSED' }]);
    assert.equal((await down.delivery.deliver(records(1), signal())).result, 'app-down');
    const controller = new AbortController();
    const stopped = harness([answer('', 500)], {
      retry: { maxAttempts: 5, initialBackoffMs: 60_000, maxBackoffMs: 60_000 },
    });
    const pending = stopped.delivery.deliver(records(1), controller.signal);
    setTimeout(() => controller.abort(), 10);
    assert.equal((await pending).result, 'stopped');
  });
});

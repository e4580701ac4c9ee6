/**
 * What the stream processor suites share: an app that answers processor requests by a script, and
 * a reader that reads a topic to its end (read_committed by default) so counts are exact.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { uniqueName } from './kafka.js';
import { waitFor } from './wait.js';

export interface ProcessorEvent {
  readonly id: string;
  readonly data?: unknown;
  readonly kafkatopic: string;
  readonly kafkapartition: number;
  readonly kafkaoffset: string;
  readonly partitionkey?: string;
}

export interface ProcessorRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly events: readonly ProcessorEvent[];
}

export interface ProcessorAnswer {
  readonly status: number;
  readonly body?: unknown;
  /** Answer this much later. */
  readonly delayMs?: number;
}

export interface ProcessorApp {
  readonly url: string;
  readonly requests: ProcessorRequest[];
  /** Requests per event id (several after a retry or a replay). */
  readonly seen: Map<string, number>;
  close(): Promise<void>;
}

/** A node:http app on port 0 that answers each request with `answer(request)`. */
export async function startProcessorApp(
  answer: (request: ProcessorRequest) => ProcessorAnswer,
): Promise<ProcessorApp> {
  const requests: ProcessorRequest[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProcessorEvent | ProcessorEvent[];
      const request = {
        path: req.url ?? '',
        headers: req.headers,
        events: Array.isArray(body) ? body : [body],
      };
      requests.push(request);
      for (const event of request.events) seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
      const { status, body: answerBody, delayMs = 0 } = answer(request);
      setTimeout(() => {
        res.writeHead(status, answerBody === undefined ? {} : { 'content-type': 'application/json' });
        res.end(answerBody === undefined ? undefined : JSON.stringify(answerBody));
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type ReadRecord = KafkaMessage & { partition: number };

/**
 * Every record of `topic` up to its current end (end offsets read first; call it once the writers
 * are done). read_committed by default: records of aborted or open transactions are not returned.
 * Control records count towards the end, so a transactional topic is read to the end too.
 */
export async function readToEnd(
  kafka: Kafka,
  topic: string,
  { readUncommitted = false, timeoutMs = 30_000 }: { readUncommitted?: boolean; timeoutMs?: number } = {},
): Promise<ReadRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)] as const),
  );
  await admin.disconnect();
  const reached = new Map<number, bigint>([...ends.keys()].map((partition) => [partition, 0n]));
  const done = () => [...ends].every(([partition, end]) => reached.get(partition)! >= end);
  const records: ReadRecord[] = [];
  if (done()) return records;
  const groupId = uniqueName('it-read-to-end');
  const consumer = kafka.consumer({ groupId, readUncommitted, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    // Batches of control records only never reach eachBatch; this event still reports them.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const next = BigInt(payload.lastOffset) + 1n;
      if (next > (reached.get(payload.partition) ?? 0n)) reached.set(payload.partition, next);
    });
    await consumer.run({
      eachBatch: ({ batch }) => {
        for (const message of batch.messages) records.push({ ...message, partition: batch.partition });
        return Promise.resolve();
      },
    });
    await waitFor(done, { timeoutMs, intervalMs: 50, what: `the end of ${topic}` });
  } finally {
    await consumer.disconnect();
    const cleanupAdmin = kafka.admin();
    await cleanupAdmin.connect();
    await cleanupAdmin.deleteGroups([groupId]).catch(() => undefined);
    await cleanupAdmin.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
}

/** True once the group has committed every record of `topic` (committed offset = end offset). */
export async function allCommitted(kafka: Kafka, group: string, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    return ends.every(
      (end) => committed.partitions.find((p) => p.partition === end.partition)?.offset === end.high,
    );
  } finally {
    await admin.disconnect();
  }
}

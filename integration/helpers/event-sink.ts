/**
 * An app for push subscriptions: a node:http server on port 0 that answers every CloudEvent 204
 * and counts deliveries per event id (`<topic>-<partition>-<offset>`) and per record value.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EventSink {
  readonly url: string;
  /** Deliveries per CloudEvent id. */
  readonly byId: Map<string, number>;
  /** Deliveries per record value (`data`, as text). */
  readonly byValue: Map<string, number>;
  /** Every delivery, duplicates included. */
  deliveries: number;
  close(): Promise<void>;
}

export async function startEventSink(): Promise<EventSink> {
  const sink = {
    url: '',
    byId: new Map<string, number>(),
    byValue: new Map<string, number>(),
    deliveries: 0,
    close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        const events = (Array.isArray(body) ? body : [body]) as { id: string; data?: unknown }[];
        for (const event of events) {
          sink.deliveries += 1;
          sink.byId.set(event.id, (sink.byId.get(event.id) ?? 0) + 1);
          const value = typeof event.data === 'string' ? event.data : JSON.stringify(event.data);
          sink.byValue.set(value, (sink.byValue.get(value) ?? 0) + 1);
        }
        res.writeHead(204).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return sink;
}

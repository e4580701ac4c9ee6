import { request } from 'undici';
import { waitFor } from './wait.js';

export const V2 = 'application/vnd.kafka.v2+json';
export const JSON_TYPE = 'application/vnd.kafka.json.v2+json';
export const BINARY_TYPE = 'application/vnd.kafka.binary.v2+json';
export const TEXT_TYPE = 'application/vnd.kafka.text.v2+json';

export interface BridgeAnswer<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export interface PolledRecord {
  topic: string;
  key: unknown;
  value: unknown;
  partition: number;
  offset: number;
  timestamp: number;
  headers?: { key: string; value: string }[];
}

/** A tiny HTTP client for the bridge's REST API (produce, metadata, consumers), as a Strimzi bridge client would use it. */
export class BridgeClient {
  constructor(readonly baseUrl: string) {}

  async call<T = Record<string, unknown>>(
    path: string,
    options: {
      method?: string;
      contentType?: string;
      accept?: string;
      body?: unknown;
      headers?: Record<string, string>;
    } = {},
  ): Promise<BridgeAnswer<T>> {
    const url = path.startsWith('http') ? path : `${this.baseUrl}${path}`;
    const res = await request(url, {
      method: (options.method ?? (options.body === undefined ? 'GET' : 'POST')) as 'GET',
      headers: {
        ...(options.body !== undefined ? { 'content-type': options.contentType ?? V2 } : {}),
        ...(options.accept ? { accept: options.accept } : {}),
        ...options.headers,
      },
      body:
        options.body === undefined
          ? undefined
          : typeof options.body === 'string'
            ? options.body
            : JSON.stringify(options.body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
  }

  /** Polls `base` until `count` records arrived (or fails after `timeoutMs`); never asks for more. */
  async pollUntil(
    base: string,
    accept: string,
    count: number,
    { timeoutMs = 20_000, maxBytes }: { timeoutMs?: number; maxBytes?: number } = {},
  ): Promise<PolledRecord[]> {
    const records: PolledRecord[] = [];
    await waitFor(
      async () => {
        const answer = await this.call<PolledRecord[]>(
          `${base}/records?timeout=500${maxBytes === undefined ? '' : `&max_bytes=${maxBytes}`}`,
          { accept },
        );
        if (answer.status !== 200)
          throw new Error(`poll answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        records.push(...answer.body);
        return records.length >= count;
      },
      { timeoutMs, intervalMs: 1, what: `${count} polled records (have ${records.length})` },
    );
    return records;
  }
}

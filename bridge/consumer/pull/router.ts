import { TLSSocket } from 'node:tls';
import { context as otelContext, propagation, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { BRIDGE_ERROR_CONTENT_TYPE, MeshError, type FieldError } from '../../../services/runtime/errors.js';
import { annotateResponse } from '../../../services/runtime/http.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import type { BridgeOpenApi, BridgeSchemaName } from '../../openapi.js';
import type { EmbeddedFormat } from '../../producer/records.js';
import type { PartitionOffset, PullConsumerInstance, TopicPartition } from './instance.js';
import { acceptsFormat, encodeRecord, RECORDS_CONTENT_TYPE, type FetchedRecord } from './records.js';
import type { PullConsumerRegistry } from './registry.js';

export interface PullConsumerRouterDeps {
  readonly registry: PullConsumerRegistry;
  readonly openapi: BridgeOpenApi;
  readonly tracer: Tracer;
  readonly metrics?: MeshMetrics;
  readonly maxBodyBytes: number;
}

/** A poll's wait when the request names no `timeout`. */
const DEFAULT_POLL_TIMEOUT_MS = 1_000;
const BODY_TYPES = new Set(['application/vnd.kafka.v2+json', 'application/json']);

interface ConsumerBody {
  name?: string;
  format?: EmbeddedFormat;
  'auto.offset.reset'?: 'earliest' | 'latest';
  'enable.auto.commit'?: boolean | string;
  'fetch.min.bytes'?: number | string;
  'consumer.request.timeout.ms'?: number | string;
  'isolation.level'?: 'read_committed' | 'read_uncommitted';
}

function send(res: Response, status: number, body?: unknown, type = BRIDGE_ERROR_CONTENT_TYPE): void {
  if (body === undefined) {
    res.status(status).end();
    return;
  }
  res.status(status).type(type).send(JSON.stringify(body));
}

/**
 * The request body as JSON, or undefined when there is none. A body must be
 * `application/vnd.kafka.v2+json` (or `application/json`): else 415.
 */
function readBody(req: Request): unknown {
  const raw = req.body as Buffer | undefined;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8').trim() : '';
  if (text.length === 0) return undefined;
  const type = req.get('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type === undefined || !BODY_TYPES.has(type)) {
    throw new MeshError(
      'MESH_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/vnd.kafka.v2+json, not "${req.get('content-type') ?? ''}"`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new MeshError('MESH_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Unknown properties are the client's 400; values the schema refuses are 422 (as in the Strimzi bridge). */
function checkBody<T>(openapi: BridgeOpenApi, schema: BridgeSchemaName, body: unknown, what: string): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new MeshError('MESH_BAD_REQUEST', `the ${what} must be a JSON object`);
  }
  const errors: FieldError[] = openapi.check(schema, body);
  if (errors.length === 0) return body as T;
  const unknown = errors.filter((error) => error.message.startsWith('unknown property'));
  if (unknown.length > 0) {
    throw new MeshError('MESH_BAD_REQUEST', `unknown properties in the ${what}`, { errors: unknown });
  }
  throw new MeshError('MESH_INVALID_RECORD', `invalid ${what}`, { errors });
}

function integerQuery(req: Request, name: string): number | undefined {
  const raw = req.query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) {
    throw new MeshError('MESH_BAD_REQUEST', `${name} must be a non-negative integer`, {
      errors: [{ in: 'query', path: `/${name}`, message: 'must be a non-negative integer' }],
    });
  }
  return Number(raw);
}

/**
 * Where the client reached us: the first `Forwarded` element's proto/host, else
 * `X-Forwarded-Proto/Host` (first values), else the connection and `Host`; plus `X-Forwarded-Prefix`.
 */
export function externalBase(req: Request): string {
  let proto: string | undefined;
  let host: string | undefined;
  const forwarded = req.get('forwarded');
  if (forwarded) {
    const first = forwarded.split(',')[0] ?? '';
    for (const pair of first.split(';')) {
      const [rawKey, ...rest] = pair.split('=');
      const key = rawKey?.trim().toLowerCase();
      const value = rest
        .join('=')
        .trim()
        .replace(/^"(.*)"$/, '$1');
      if (key === 'proto' && value) proto = value;
      if (key === 'host' && value) host = value;
    }
  }
  proto ??= req.get('x-forwarded-proto')?.split(',')[0]?.trim() || undefined;
  host ??= req.get('x-forwarded-host')?.split(',')[0]?.trim() || undefined;
  proto ??= req.socket instanceof TLSSocket ? 'https' : 'http';
  host ??= req.get('host') ?? `${req.socket.localAddress ?? '127.0.0.1'}:${req.socket.localPort ?? ''}`;
  const prefix = (req.get('x-forwarded-prefix')?.split(',')[0]?.trim() ?? '').replace(/\/+$/, '');
  return `${proto}://${host}${prefix}`;
}

function settingsOf(group: string, body: ConsumerBody) {
  const flag = body['enable.auto.commit'];
  return {
    group,
    ...(body.name === undefined ? {} : { name: body.name }),
    format: body.format ?? 'binary',
    autoOffsetReset: body['auto.offset.reset'] ?? 'latest',
    autoCommit: flag === undefined ? true : flag === true || flag === 'true',
    fetchMinBytes: Number(body['fetch.min.bytes'] ?? 1),
    requestTimeoutMs: Number(body['consumer.request.timeout.ms'] ?? 30_000),
    isolationLevel: body['isolation.level'] ?? 'read_uncommitted',
  } as const;
}

/** The Strimzi bridge's `/consumers/...` API as an express router, mounted by the bridge app. */
export function createPullConsumerRouter(deps: PullConsumerRouterDeps): Router {
  const { registry, openapi, tracer } = deps;
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const route = (template: string) => (_req: Request, res: Response, next: NextFunction) => {
    annotateResponse(res, { route: template });
    next();
  };
  const instanceOf = (req: Request): PullConsumerInstance =>
    registry.get(String(req.params.group), String(req.params.name));
  /** Runs `work` on the instance of the path, keeping it from idling out meanwhile. */
  const withInstance = (
    template: string,
    work: (instance: PullConsumerInstance, req: Request, res: Response) => Promise<void> | void,
  ) =>
    [
      route(`/consumers/{groupid}/instances/{name}${template}`),
      rawBody,
      async (req: Request, res: Response) => {
        const instance = instanceOf(req);
        await instance.use(() => work(instance, req, res));
      },
    ] as const;

  router.post('/consumers/:group', route('/consumers/{groupid}'), rawBody, (req, res) => {
    const group = String(req.params.group);
    const body = readBody(req);
    const checked =
      body === undefined ? {} : checkBody<ConsumerBody>(openapi, 'Consumer', body, 'consumer config');
    const instance = registry.create(settingsOf(group, checked));
    const name = instance.settings.name;
    send(res, 200, {
      instance_id: name,
      base_uri: `${externalBase(req)}/consumers/${encodeURIComponent(group)}/instances/${encodeURIComponent(name)}`,
    });
  });

  router.delete(
    '/consumers/:group/instances/:name',
    route('/consumers/{groupid}/instances/{name}'),
    async (req, res) => {
      await registry.delete(String(req.params.group), String(req.params.name));
      send(res, 204);
    },
  );

  router.post(
    '/consumers/:group/instances/:name/subscription',
    ...withInstance('/subscription', async (instance, req, res) => {
      const body = checkBody<{ topics?: string[]; topic_pattern?: string }>(
        openapi,
        'Topics',
        readBody(req) ?? {},
        'subscription',
      );
      if (body.topics !== undefined && body.topic_pattern !== undefined) {
        throw new MeshError('MESH_SUBSCRIPTION_CONFLICT', 'give either topics or topic_pattern, not both');
      }
      if (body.topics === undefined && body.topic_pattern === undefined) {
        throw new MeshError('MESH_INVALID_RECORD', 'a subscription needs topics or a topic_pattern');
      }
      if (body.topic_pattern !== undefined) {
        try {
          new RegExp(body.topic_pattern);
        } catch (err) {
          throw new MeshError('MESH_INVALID_RECORD', `invalid topic_pattern: ${(err as Error).message}`);
        }
      }
      await instance.subscribe(body.topics, body.topic_pattern);
      send(res, 204);
    }),
  );
  router.get(
    '/consumers/:group/instances/:name/subscription',
    ...withInstance('/subscription', (instance, _req, res) => send(res, 200, instance.subscription())),
  );
  router.delete(
    '/consumers/:group/instances/:name/subscription',
    ...withInstance('/subscription', async (instance, _req, res) => {
      await instance.unsubscribe();
      send(res, 204);
    }),
  );

  router.post(
    '/consumers/:group/instances/:name/assignments',
    ...withInstance('/assignments', async (instance, req, res) => {
      const body = checkBody<{ partitions: TopicPartition[] }>(
        openapi,
        'Partitions',
        readBody(req) ?? {},
        'assignment',
      );
      await instance.assign(body.partitions);
      send(res, 204);
    }),
  );
  router.get(
    '/consumers/:group/instances/:name/assignments',
    ...withInstance('/assignments', (instance, _req, res) =>
      send(res, 200, { partitions: instance.assignedPartitions() }),
    ),
  );

  router.get(
    '/consumers/:group/instances/:name/records',
    ...withInstance('/records', async (instance, req, res) => {
      const { format } = instance.settings;
      if (!acceptsFormat(req.get('accept'), format)) {
        throw new MeshError(
          'MESH_NOT_ACCEPTABLE',
          `this instance was created with format "${format}": Accept must be ${RECORDS_CONTENT_TYPE[format]}, not "${req.get('accept') ?? ''}"`,
        );
      }
      const timeout = integerQuery(req, 'timeout') ?? DEFAULT_POLL_TIMEOUT_MS;
      const maxBytes = integerQuery(req, 'max_bytes') ?? Number.MAX_SAFE_INTEGER;
      const records = await instance.poll(timeout, maxBytes);
      traceRecords(tracer, instance, records);
      deps.metrics?.bridgeConsumedRecords.inc({ group: instance.settings.group }, records.length);
      send(
        res,
        200,
        records.map((record) => encodeRecord(format, record)),
        RECORDS_CONTENT_TYPE[format],
      );
    }),
  );

  router.post(
    '/consumers/:group/instances/:name/offsets',
    ...withInstance('/offsets', async (instance, req, res) => {
      const body = readBody(req);
      const offsets =
        body === undefined
          ? undefined
          : checkBody<{ offsets: PartitionOffset[] }>(openapi, 'OffsetCommitSeekList', body, 'offsets')
              .offsets;
      await instance.commit(offsets);
      send(res, 204);
    }),
  );

  router.post(
    '/consumers/:group/instances/:name/positions',
    ...withInstance('/positions', async (instance, req, res) => {
      const body = checkBody<{ offsets: PartitionOffset[] }>(
        openapi,
        'OffsetCommitSeekList',
        readBody(req) ?? {},
        'positions',
      );
      await instance.seek(body.offsets);
      send(res, 204);
    }),
  );
  for (const where of ['beginning', 'end'] as const) {
    router.post(
      `/consumers/:group/instances/:name/positions/${where}`,
      ...withInstance(`/positions/${where}`, async (instance, req, res) => {
        const body = checkBody<{ partitions: TopicPartition[] }>(
          openapi,
          'Partitions',
          readBody(req) ?? {},
          'partitions',
        );
        await instance.seekTo(body.partitions, where);
        send(res, 204);
      }),
    );
  }
  return router;
}

/**
 * One CONSUMER span per polled record that carries trace context (its `traceparent` header, written
 * by the produce API), continuing that trace and linked to the poll request's span.
 */
function traceRecords(
  tracer: Tracer,
  instance: PullConsumerInstance,
  records: readonly FetchedRecord[],
): void {
  if (records.length === 0) return;
  const requestContext = otelContext.active();
  const requestSpan = trace.getSpanContext(requestContext);
  for (const record of records) {
    const carrier: Record<string, string> = {};
    for (const name of ['traceparent', 'tracestate']) {
      const raw = record.headers[name];
      const value = Array.isArray(raw) ? raw[0] : raw;
      if (value !== undefined) carrier[name] = value.toString();
    }
    // A record without trace context has no trace to continue; the poll's SERVER span covers it.
    if (carrier.traceparent === undefined) continue;
    const parent = propagation.extract(requestContext, carrier);
    const span = tracer.startSpan(
      `receive ${record.topic}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'receive',
          'messaging.operation.name': 'poll',
          'messaging.destination.name': record.topic,
          'messaging.destination.partition.id': String(record.partition),
          'messaging.kafka.offset': Number(record.offset),
          'messaging.consumer.group.name': instance.settings.group,
          'messaging.client.id': instance.settings.name,
        },
        ...(requestSpan ? { links: [{ context: requestSpan }] } : {}),
      },
      parent,
    );
    span.end();
  }
}

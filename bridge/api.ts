import { createHash } from 'node:crypto';
import { context as otelContext, propagation, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../services/runtime/logging.js';
import {
  BRIDGE_ERROR_CONTENT_TYPE,
  MeshError,
  toMeshError,
  type FieldError,
} from '../services/runtime/errors.js';
import { annotateResponse, ensureRequestId } from '../services/runtime/http.js';
import type { MeshMetrics } from '../services/runtime/metrics.js';
import { createPullConsumerRouter } from './consumer/pull/router.js';
import { createLightmeshRouter, type LightmeshRouterDeps } from './lightmesh/routes.js';
import type { PullConsumerRegistry } from './consumer/pull/registry.js';
import type { TopicMetadata } from './kafka/metadata.js';
import type { BridgeOpenApi } from './openapi.js';
import type { IdempotencyStore } from './producer/idempotency.js';
import type { OffsetEntry, ProduceService } from './producer/produce-service.js';
import { formatOfContentType, type RestRecord } from './producer/records.js';

export interface BridgeLimits {
  readonly maxBodyBytes: number;
  readonly maxRecordsPerRequest: number;
  readonly maxInFlightBytes: number;
  readonly topicAdmin: boolean;
}

export interface BridgeApiDeps {
  readonly produce: ProduceService;
  readonly metadata: TopicMetadata;
  readonly openapi: BridgeOpenApi;
  readonly idempotency: IdempotencyStore;
  readonly limits: BridgeLimits;
  readonly version: string;
  readonly tracer: Tracer;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Keeps `?async=true` sends alive through drain. */
  readonly trackBackground: (work: Promise<unknown>) => void;
  /** Pull consumer instances (`/consumers/...`); without it those routes are 404. */
  readonly consumers?: PullConsumerRegistry;
  /** light-mesh compatibility routes (`/producers/{topic}`, `/health/*`, active consumer aliases). */
  readonly lightmesh?: Omit<
    LightmeshRouterDeps,
    'produce' | 'openapi' | 'maxBodyBytes' | 'maxRecordsPerRequest' | 'consumers' | 'logger'
  >;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function topicParam(req: Request): string {
  const topic = String(req.params.topic);
  // Kafka refuses "." and ".." although the pattern allows them (a decoded %2e%2e lands here).
  if (!TOPIC_NAME.test(topic) || topic === '.' || topic === '..') {
    throw new MeshError('MESH_BAD_REQUEST', `invalid topic name "${topic}"`, {
      errors: [{ in: 'path', path: '/topicname', message: 'must match ^[a-zA-Z0-9._-]{1,249}$' }],
    });
  }
  return topic;
}

function partitionParam(req: Request): number {
  const text = String(req.params.partition);
  if (!/^\d{1,9}$/.test(text)) {
    throw new MeshError('MESH_BAD_REQUEST', `invalid partition "${text}"`, {
      errors: [{ in: 'path', path: '/partitionid', message: 'must be a non-negative integer' }],
    });
  }
  return Number(text);
}

function sendBridge(res: Response, status: number, body: unknown): void {
  res.status(status).type(BRIDGE_ERROR_CONTENT_TYPE).send(JSON.stringify(body));
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a raw JSON body; a syntax error is the client's 400, and so are bytes that are not UTF-8
 * (JSON is UTF-8: decoding them leniently would write U+FFFD into the records instead).
 */
function parseJsonBody(raw: unknown): unknown {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.alloc(0);
  if (bytes.length === 0) throw new MeshError('MESH_BAD_REQUEST', 'the request has no body');
  try {
    return JSON.parse(STRICT_UTF8.decode(bytes)) as unknown;
  } catch (err) {
    throw new MeshError('MESH_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

/** The bridge's REST API (Strimzi HTTP bridge shapes) as an express app. */
export function createBridgeApp(deps: BridgeApiDeps): express.Express {
  const { limits, metadata, produce, openapi, idempotency, tracer, metrics, logger } = deps;
  let inFlightBytes = 0;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Request id and a SERVER span per request, continued from the caller's traceparent.
  app.use((req: Request, res: Response, next: NextFunction) => {
    ensureRequestId(req, res);
    const parent = propagation.extract(otelContext.active(), req.headers);
    const span = tracer.startSpan(`${req.method} bridge`, { kind: SpanKind.SERVER }, parent);
    annotateResponse(res, { traceId: span.spanContext().traceId });
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      span.end();
    });
    otelContext.with(trace.setSpan(parent, span), next);
  });
  const route = (template: string) => (_req: Request, res: Response, next: NextFunction) => {
    annotateResponse(res, { route: template });
    next();
  };
  const rawBody = express.raw({ type: () => true, limit: limits.maxBodyBytes });

  app.get('/', route('/'), (_req, res) => sendBridge(res, 200, { bridge_version: deps.version }));
  app.get('/openapi', route('/openapi'), (_req, res) => {
    res.json(openapi.document);
  });

  app.get('/topics', route('/topics'), async (_req, res) => {
    sendBridge(res, 200, await metadata.listTopics());
  });
  app.get('/topics/:topic', route('/topics/{topicname}'), async (req, res) => {
    sendBridge(res, 200, await metadata.describeTopic(topicParam(req)));
  });
  app.get('/topics/:topic/partitions', route('/topics/{topicname}/partitions'), async (req, res) => {
    sendBridge(res, 200, await metadata.describePartitions(topicParam(req)));
  });
  app.get(
    '/topics/:topic/partitions/:partition',
    route('/topics/{topicname}/partitions/{partitionid}'),
    async (req, res) => {
      sendBridge(res, 200, await metadata.describePartition(topicParam(req), partitionParam(req)));
    },
  );
  app.get(
    '/topics/:topic/partitions/:partition/offsets',
    route('/topics/{topicname}/partitions/{partitionid}/offsets'),
    async (req, res) => {
      sendBridge(res, 200, await metadata.partitionOffsets(topicParam(req), partitionParam(req)));
    },
  );

  const handleProduce = async (req: Request, res: Response, partition: number | undefined): Promise<void> => {
    const topic = topicParam(req);
    const format = formatOfContentType(req.get('content-type'));
    if (!format) {
      throw new MeshError(
        'MESH_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type must be application/vnd.kafka.{json,binary,text}.v2+json or application/json, not "${req.get('content-type') ?? ''}"`,
      );
    }
    const raw = req.body as Buffer;
    const body = parseJsonBody(raw);
    // `null`, a number or an array is not a record list: the shape check below says so (422).
    const records =
      body !== null && typeof body === 'object' ? (body as { records?: unknown }).records : undefined;
    if (partition !== undefined && Array.isArray(records)) {
      const misplaced: FieldError[] = [];
      records.forEach((record: unknown, index) => {
        for (const field of ['partition', 'timestamp']) {
          if (record !== null && typeof record === 'object' && field in record) {
            misplaced.push({
              in: 'body',
              path: `/records/${index}/${field}`,
              message: `not allowed when producing to a partition`,
            });
          }
        }
      });
      if (misplaced.length > 0) {
        throw new MeshError(
          'MESH_BAD_REQUEST',
          'records sent to a partition may not name a partition or timestamp',
          {
            errors: misplaced,
          },
        );
      }
    }
    const shapeErrors = openapi.check(
      partition === undefined ? 'ProducerRecordList' : 'PartitionRecordList',
      body,
    );
    if (shapeErrors.length > 0) {
      throw new MeshError('MESH_INVALID_RECORD', 'the body is not a valid list of records', {
        errors: shapeErrors,
      });
    }
    const restRecords = records as RestRecord[];
    if (restRecords.length > limits.maxRecordsPerRequest) {
      throw new MeshError(
        'MESH_INVALID_RECORD',
        `${restRecords.length} records in one request; at most ${limits.maxRecordsPerRequest} are allowed`,
      );
    }
    if (inFlightBytes + raw.length > limits.maxInFlightBytes) {
      metrics.bridgeProducedRecords.inc({ topic, result: 'rejected' }, restRecords.length);
      throw new MeshError('MESH_RATE_LIMITED', 'too many bytes waiting for Kafka; retry later', {
        headers: { 'retry-after': '1' },
      });
    }

    const key = req.get('idempotency-key');
    const fingerprint = key
      ? createHash('sha256')
          .update(`${topic}\0${partition ?? ''}\0${format}\0`)
          .update(raw)
          .digest('hex')
      : '';
    const claim = key ? await idempotency.claim(`${topic}\0${key}`, fingerprint) : undefined;
    if (claim?.kind === 'mismatch') {
      throw new MeshError(
        'MESH_INVALID_RECORD',
        'this Idempotency-Key was already used with a different request',
      );
    }
    const previous = claim?.kind === 'repeat' ? claim.offsets : undefined;
    const skip = new Set<number>();
    previous?.forEach((entry, index) => {
      if ('offset' in entry) skip.add(index);
    });

    inFlightBytes += raw.length;
    try {
      const decoded = produce.prepare({ topic, format, records: restRecords });
      if (skip.size === restRecords.length && previous) {
        claim!.complete(previous);
        sendBridge(res, 200, { offsets: previous });
        return;
      }
      const sending = produce.produce(
        { topic, partition, format, records: restRecords, parentContext: otelContext.active(), skip },
        decoded,
      );
      if (req.query.async === 'true') {
        const background = sending.then(
          async (result) => claim?.complete(merge(previous, await result.final)),
          (err: unknown) => {
            claim?.abandon();
            logger.warn({ err, topic }, 'async produce failed');
          },
        );
        deps.trackBackground(background);
        res.status(204).end();
        return;
      }
      const result = await sending;
      const offsets = merge(previous, result.offsets);
      // A repeat of the key waits for the real outcome of records still in flight.
      if (claim) {
        void result.final.then(
          (final) => claim.complete(merge(previous, final)),
          () => claim.abandon(),
        );
      }
      if (result.status === 503) res.setHeader('retry-after', '1');
      sendBridge(res, result.status, { offsets });
    } catch (err) {
      claim?.abandon();
      throw err;
    } finally {
      inFlightBytes -= raw.length;
    }
  };

  app.post('/topics/:topic', route('/topics/{topicname}'), rawBody, (req, res) =>
    handleProduce(req, res, undefined),
  );
  app.post(
    '/topics/:topic/partitions/:partition',
    route('/topics/{topicname}/partitions/{partitionid}'),
    rawBody,
    (req, res) => handleProduce(req, res, partitionParam(req)),
  );

  app.post('/admin/topics', route('/admin/topics'), rawBody, async (req, res) => {
    if (!limits.topicAdmin)
      throw new MeshError('MESH_NOT_FOUND', 'topic administration is off (bridge.topicAdmin)');
    const body = parseJsonBody(req.body);
    const errors = openapi.check('NewTopic', body);
    if (errors.length > 0) throw new MeshError('MESH_INVALID_RECORD', 'invalid topic request', { errors });
    const { topic_name, partitions_count, replication_factor } = body as {
      topic_name: string;
      partitions_count?: number;
      replication_factor?: number;
    };
    const created = await metadata.createTopic(topic_name, partitions_count, replication_factor);
    if (!created) throw new MeshError('MESH_TOPIC_EXISTS', `topic ${topic_name} already exists`);
    res.status(201).end();
  });

  if (deps.lightmesh) {
    app.use(
      createLightmeshRouter({
        ...deps.lightmesh,
        produce,
        openapi,
        maxBodyBytes: limits.maxBodyBytes,
        maxRecordsPerRequest: limits.maxRecordsPerRequest,
        consumers: deps.consumers,
        logger,
      }),
    );
  }

  if (deps.consumers) {
    app.use(
      createPullConsumerRouter({
        registry: deps.consumers,
        openapi,
        tracer,
        metrics,
        maxBodyBytes: limits.maxBodyBytes,
      }),
    );
  }

  app.use((req: Request, res: Response) => {
    const error = new MeshError('MESH_NOT_FOUND', `no bridge endpoint ${req.method} ${req.path}`);
    sendBridge(res, error.status, error.toBridgeError());
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const error = fromExpressError(err);
    if (error.code === 'MESH_INTERNAL') logger.error({ err }, 'bridge request failed');
    for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
    sendBridge(res, error.status, error.toBridgeError());
  });
  return app;
}

/** Acknowledged entries of an earlier attempt, with this attempt's entries for the rest. */
function merge(previous: OffsetEntry[] | undefined, current: (OffsetEntry | undefined)[]): OffsetEntry[] {
  return current.map((entry, index) => entry ?? previous![index]);
}

/** Body-parser errors carry `type`; turn them into the registry's errors. */
function fromExpressError(err: unknown): MeshError {
  const type = (err as { type?: string } | undefined)?.type;
  if (type === 'entity.too.large') {
    const limit = (err as { limit?: number }).limit;
    return new MeshError(
      'MESH_PAYLOAD_TOO_LARGE',
      `the body is larger than ${limit ?? 'the limit of'} bytes`,
    );
  }
  if (type === 'request.aborted') return new MeshError('MESH_BAD_REQUEST', 'the client aborted the request');
  // Other client errors of express and body-parser (a path parameter that is not valid
  // percent-encoding, an unsupported body encoding) carry a 4xx `status`: the client's fault, not 500.
  const status = (err as { status?: unknown } | undefined)?.status;
  if (!(err instanceof MeshError) && typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 415 ? 'MESH_UNSUPPORTED_MEDIA_TYPE' : 'MESH_BAD_REQUEST';
    return new MeshError(code, (err as Error).message);
  }
  return toMeshError(err);
}

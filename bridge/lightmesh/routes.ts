/**
 * The light-mesh Kafka sidecar's REST paths on the bridge, over the bridge's own machinery:
 * `POST /producers/{topic}` (through the produce service), `/health/liveness` and
 * `/health/readiness`, the active consumer's path names as aliases of the pull consumer API, and
 * `GET`/`POST /consumers/deadLetter/active`.
 */
import { context as otelContext } from '@opentelemetry/api';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Admin } from 'kafkajs';
import type { Readiness } from '../../services/runtime/component.js';
import { MeshError } from '../../services/runtime/errors.js';
import { annotateResponse } from '../../services/runtime/http.js';
import type { Logger } from '../../services/runtime/logging.js';
import type { BridgeOpenApi } from '../openapi.js';
import type { PartitionOffset } from '../consumer/pull/instance.js';
import type { PullConsumerRegistry } from '../consumer/pull/registry.js';
import type { ProduceService } from '../producer/produce-service.js';
import type { AuditWriter } from './audit.js';
import { LightmeshDeadLetters, type DeadLetterDeps } from './dead-letter.js';
import {
  toLightmeshOffsets,
  toRestRecords,
  type LightmeshProduceOptions,
  type LightmeshProduceRequest,
} from './produce.js';

export interface LightmeshRouterDeps {
  readonly produce: ProduceService;
  readonly openapi: BridgeOpenApi;
  readonly options: LightmeshProduceOptions;
  readonly audit: AuditWriter;
  readonly maxBodyBytes: number;
  readonly maxRecordsPerRequest: number;
  /** The bridge's readiness: `/health/readiness` answers `OK` when ready, else 503 `ERROR`. */
  readonly readiness: () => Readiness;
  readonly consumers?: PullConsumerRegistry | undefined;
  /** The bridge's connected admin client (committed offsets). */
  readonly admin: Admin;
  /** The app and the push subscriptions, for dead-letter replay; without it replay answers 404. */
  readonly backend?: DeadLetterDeps['backend'];
  readonly logger: Logger;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function parseJson(raw: unknown): unknown {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : '';
  if (text.trim().length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new MeshError('MESH_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function json(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(JSON.stringify(body));
}

/** Alias paths of the light-mesh active consumer → the pull consumer API's own paths. */
const ALIASES: [RegExp, string][] = [
  [/^(\/consumers\/[^/]+\/instances\/[^/]+)\/subscriptions$/, '$1/subscription'],
  [/^(\/consumers\/[^/]+\/instances\/[^/]+)\/positions\/first$/, '$1/positions/beginning'],
  [/^(\/consumers\/[^/]+\/instances\/[^/]+)\/positions\/last$/, '$1/positions/end'],
];

export function createLightmeshRouter(deps: LightmeshRouterDeps): Router {
  const { produce, openapi, options, audit } = deps;
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const route = (template: string) => (_req: Request, res: Response, next: NextFunction) => {
    annotateResponse(res, { route: template });
    next();
  };

  // Aliases first: the rewritten URL is then routed by the pull consumer router like its own path.
  router.use((req: Request, _res: Response, next: NextFunction) => {
    const [path, query] = splitUrl(req.url);
    for (const [pattern, replacement] of ALIASES) {
      if (pattern.test(path)) {
        req.url = path.replace(pattern, replacement) + query;
        break;
      }
    }
    next();
  });

  router.get('/health/liveness', route('/health/liveness'), (_req, res) => {
    res.status(200).type('text/plain').send('OK');
  });
  router.get('/health/readiness', route('/health/readiness'), (_req, res) => {
    const readiness = deps.readiness();
    res
      .status(readiness.ready ? 200 : 503)
      .type('text/plain')
      .send(readiness.ready ? 'OK' : 'ERROR');
  });

  router.post('/producers/:topic', route('/producers/{topic}'), rawBody, async (req, res) => {
    const topic = String(req.params.topic);
    if (!TOPIC_NAME.test(topic) || topic === '.' || topic === '..') {
      throw new MeshError('MESH_BAD_REQUEST', `invalid topic name "${topic}"`, {
        errors: [{ in: 'path', path: '/topic', message: 'must match ^[a-zA-Z0-9._-]{1,249}$' }],
      });
    }
    const body = parseJson(req.body);
    if (body === undefined) throw new MeshError('MESH_BAD_REQUEST', 'the request has no body');
    const shapeErrors = openapi.check('LightmeshProduceRequest', body);
    if (shapeErrors.length > 0) {
      throw new MeshError('MESH_INVALID_RECORD', 'the body is not a valid light-mesh produce request', {
        errors: shapeErrors,
      });
    }
    const request = body as LightmeshProduceRequest;
    if (request.records.length > deps.maxRecordsPerRequest) {
      throw new MeshError(
        'MESH_INVALID_RECORD',
        `${request.records.length} records in one request; at most ${deps.maxRecordsPerRequest} are allowed`,
      );
    }
    const { records, ids } = toRestRecords(request, options, {
      correlationId: req.get('x-correlation-id'),
      traceabilityId: req.get('x-traceability-id'),
      authorization: req.get('authorization'),
    });
    const decoded = produce.prepare({ topic, format: 'binary', records });
    const result = await produce.produce(
      { topic, format: 'binary', records, parentContext: otelContext.active() },
      decoded,
    );
    const offsets = result.offsets.map((entry) => entry!);
    if (audit.enabled) {
      await audit.write(
        offsets.map((entry, index) => ({
          auditType: 'PRODUCER' as const,
          topic,
          partition: 'offset' in entry ? entry.partition : null,
          offset: 'offset' in entry ? entry.offset : null,
          correlationId: ids[index].correlationId,
          traceabilityId: ids[index].traceabilityId ?? null,
          key: ids[index].key,
          auditStatus: 'offset' in entry ? ('SUCCESS' as const) : ('FAILURE' as const),
          stacktrace: 'offset' in entry ? null : entry.message,
        })),
      );
    }
    if (result.status === 503) res.setHeader('retry-after', '1');
    json(res, result.status, { offsets: toLightmeshOffsets(offsets) });
  });

  if (deps.consumers) {
    const registry = deps.consumers;
    const deadLetters = new LightmeshDeadLetters({
      registry,
      produce,
      audit,
      ...(deps.backend ? { backend: deps.backend } : {}),
      logger: deps.logger.child({ component: 'lightmesh-dead-letters' }),
    });
    router.get(
      '/consumers/deadLetter/reactive',
      route('/consumers/deadLetter/reactive'),
      async (req, res) => {
        json(res, 200, await deadLetters.reactive(req.query));
      },
    );
    router.get('/consumers/deadLetter/active', route('/consumers/deadLetter/active'), async (req, res) => {
      json(res, 200, await deadLetters.active(req.query));
    });
    router.post(
      '/consumers/deadLetter/active',
      route('/consumers/deadLetter/active'),
      rawBody,
      async (req, res) => {
        json(res, 200, await deadLetters.write(req.query, parseJson(req.body)));
      },
    );
    // PUT offsets: commit (the given offsets, or what polls handed out) and answer what is committed.
    router.put(
      '/consumers/:group/instances/:name/offsets',
      route('/consumers/{group}/instances/{instance}/offsets'),
      rawBody,
      async (req, res) => {
        const group = String(req.params.group);
        const instance = registry.get(group, String(req.params.name));
        const body = parseJson(req.body);
        let given: PartitionOffset[] | undefined;
        if (body !== undefined) {
          const errors = openapi.check('OffsetCommitSeekList', body);
          if (errors.length > 0) throw new MeshError('MESH_INVALID_RECORD', 'invalid offsets', { errors });
          given = (body as { offsets: PartitionOffset[] }).offsets;
        }
        await instance.use(() => instance.commit(given));
        const partitions = given ?? instance.assignedPartitions();
        const topics = [...new Set(partitions.map((p) => p.topic))];
        const committed =
          topics.length === 0 ? [] : await deps.admin.fetchOffsets({ groupId: group, topics });
        const wanted = new Set(partitions.map((p) => `${p.topic}\0${p.partition}`));
        const offsets = committed.flatMap(({ topic, partitions: list }) =>
          list
            .filter((p) => wanted.has(`${topic}\0${p.partition}`) && Number(p.offset) >= 0)
            .map((p) => ({
              topic,
              partition: p.partition,
              offset: Number(p.offset),
              metadata: p.metadata ?? '',
            })),
        );
        json(res, 200, { offsets });
      },
    );
  }
  return router;
}

function splitUrl(url: string): [string, string] {
  const at = url.indexOf('?');
  return at < 0 ? [url, ''] : [url.slice(0, at), url.slice(at)];
}

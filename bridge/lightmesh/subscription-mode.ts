/**
 * `mode: lightmesh` of a push subscription, as the delivery format it plugs into the partition feed
 * with ("deliver these records → which are final"): batches of up to `maxBatch` records of one
 * partition, delivered by LightmeshDelivery (light-mesh reactive consumer contract), with the
 * subscription's audit writer and delivery metrics. A batch is final as a whole.
 */
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import type { Producer } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import type { ConsumedRecord } from '../consumer/push/cloudevents.js';
import type { AppClient } from '../consumer/push/delivery.js';
import type { SubscriptionConfig } from '../consumer/push/subscription.js';
import { startBatchSpan } from '../consumer/push/tracing.js';
import { AuditWriter } from './audit.js';
import { deadLetterTopicOf } from './codec.js';
import { LightmeshDelivery, type LightmeshBatchResult } from './reactive.js';

export interface LightmeshModeDeps {
  readonly app: AppClient;
  /** The app's base URL (`ingress.target`), for the health check. */
  readonly target: string;
  readonly deadLetterProducer: () => Promise<Producer>;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
}

/** The shape of the push subscription's `DeliveryFormat` (bridge/consumer/push/feed.ts). */
export interface LightmeshDeliveryFormat {
  readonly maxRecords: number;
  readonly laneOf: (record: ConsumedRecord) => string;
  readonly deliver: (
    records: readonly ConsumedRecord[],
    signal: AbortSignal,
    markFinal: (offsets: readonly string[]) => void,
  ) => Promise<LightmeshBatchResult>;
}

export function lightmeshDeliveryFor(config: SubscriptionConfig, deps: LightmeshModeDeps): LightmeshDelivery {
  const { lightmesh } = config;
  const logger = deps.logger.child({ subscription: config.name, group: config.group, mode: 'lightmesh' });
  const { subscriptionDeliveries, subscriptionDeadLetters } = deps.metrics;
  return new LightmeshDelivery({
    settings: lightmesh,
    app: deps.app,
    target: deps.target,
    path: deps.app.pathFor(config.path),
    timeoutMs: config.timeoutMs,
    retry: config.retry,
    deadLetterProducer: deps.deadLetterProducer,
    audit: new AuditWriter({
      settings: lightmesh.audit,
      serviceId: lightmesh.serviceId,
      producer: deps.deadLetterProducer,
      logger: logger.child({ component: 'audit' }),
    }),
    logger,
    count: (result, n, topic) => {
      if (n <= 0) return;
      subscriptionDeliveries.inc({ subscription: config.name, result }, n);
      if (result === 'dead_letter' && topic !== undefined) {
        subscriptionDeadLetters.inc(
          { subscription: config.name, topic: deadLetterTopicOf(topic, lightmesh.deadLetterTopicExt) },
          n,
        );
      }
    },
  });
}

/** The delivery format of a `lightmesh` subscription: whole batches, one lane per partition. */
export function lightmeshFormat(
  config: SubscriptionConfig,
  deps: LightmeshModeDeps,
): LightmeshDeliveryFormat {
  const delivery = lightmeshDeliveryFor(config, deps);
  return {
    maxRecords: config.maxBatch,
    laneOf: () => '',
    deliver: async (records, signal, markFinal) => {
      const { span, headers } = startBatchSpan(deps.tracer, records, {
        group: config.group,
        subscription: config.name,
      });
      try {
        const report = await delivery.deliver(records, signal, { headers });
        if (report.result === 'final') markFinal(records.map((record) => record.message.offset));
        else span.setStatus({ code: SpanStatusCode.ERROR, message: report.result });
        return report.result;
      } finally {
        span.end();
      }
    },
  };
}

/**
 * All stream processors of a sidecar as one component: one Kafka client, one idempotent producer
 * for the at_least_once processors (connected on first need), transactional producers per input
 * partition for the exactly_once ones, one keep-alive pool to the app. Drained after the
 * listeners: in-flight requests finish, what is final is committed (the open transaction is
 * committed or aborted), then the consumers leave their groups.
 */
import type { Tracer } from '@opentelemetry/api';
import { Partitioners } from 'kafkajs';
import type { Component, Readiness } from '../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../services/runtime/config.js';
import type { Logger } from '../../services/runtime/logging.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { GroupMembers } from '../consumer/group-members.js';
import { Semaphore } from '../consumer/push/ordering.js';
import { StreamProcessor, type ProcessorConfig } from './processor.js';

export interface ProcessorsOptions {
  readonly processors: readonly ProcessorConfig[];
  readonly kafka: DeepReadonly<KafkaConfig>;
  /** The app: `ingress.target`. */
  readonly target: string;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  /** Tests shorten it; the default suits production. */
  readonly lagIntervalMs?: number;
}

export class ProcessorsComponent implements Component {
  readonly name = 'processors';
  private readonly processors: GroupMembers<ProcessorConfig, StreamProcessor>;

  constructor(options: ProcessorsOptions) {
    this.processors = new GroupMembers({
      configs: options.processors,
      kafka: options.kafka,
      clientIdSuffix: 'processor',
      target: options.target,
      logger: options.logger,
      create: (config, { client, app, producer }) =>
        new StreamProcessor({
          config,
          kafka: client,
          app,
          producer,
          transactionalProducer: (transactionalId) =>
            client.producer({
              transactionalId,
              idempotent: true,
              maxInFlightRequests: 1,
              allowAutoTopicCreation: false,
              createPartitioner: Partitioners.DefaultPartitioner,
            }),
          semaphore: new Semaphore(config.maxConcurrency),
          metrics: options.metrics,
          logger: options.logger,
          tracer: options.tracer,
          ...(options.lagIntervalMs !== undefined ? { lagIntervalMs: options.lagIntervalMs } : {}),
        }),
    });
  }

  start(): Promise<void> {
    return this.processors.start();
  }

  readiness(): Readiness {
    return this.processors.readiness();
  }

  drain(): Promise<void> {
    return this.processors.drain();
  }

  stop(): Promise<void> {
    return this.processors.stop();
  }
}

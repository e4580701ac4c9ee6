/**
 * All stream processors of a sidecar as one component: one Kafka client, one idempotent producer
 * for the at_least_once processors (connected on first need), transactional producers per input
 * partition for the exactly_once ones, one keep-alive pool to the app. Drained after the
 * listeners: in-flight requests finish, what is final is committed (the open transaction is
 * committed or aborted), then the consumers leave their groups.
 */
import type { Tracer } from '@opentelemetry/api';
import { Partitioners, type Producer } from 'kafkajs';
import type { Component, Readiness } from '../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../services/runtime/config.js';
import type { Logger } from '../../services/runtime/logging.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { createKafkaClient } from '../kafka/client.js';
import { AppClient } from '../consumer/push/delivery.js';
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
  private readonly processors: StreamProcessor[];
  private readonly app: AppClient;
  private readonly producer: Producer;
  private producerConnection: Promise<Producer> | undefined;
  private drainPromise: Promise<void> | undefined;

  constructor(options: ProcessorsOptions) {
    const client = createKafkaClient(
      { ...options.kafka, clientId: `${options.kafka.clientId}-processor` },
      options.logger,
    );
    // Java-compatible partitioner: an output lands on the partition a Java client would pick.
    this.producer = client.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const connections = options.processors.reduce((sum, p) => sum + p.maxConcurrency, 0);
    this.app = new AppClient(options.target, Math.max(1, connections));
    this.processors = options.processors.map(
      (config) =>
        new StreamProcessor({
          config,
          kafka: client,
          app: this.app,
          producer: () => this.sharedProducer(),
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
    );
  }

  start(): Promise<void> {
    // Consumers connect and join in the background; readiness reports when each has joined.
    for (const processor of this.processors) processor.start();
    return Promise.resolve();
  }

  readiness(): Readiness {
    const waiting = this.processors.filter((p) => !p.isReady);
    if (waiting.length === 0) return { ready: true };
    return { ready: false, reason: waiting.map((p) => `${p.name}: ${p.notReadyReason}`).join('; ') };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      await Promise.allSettled(this.processors.map((p) => p.drain()));
      await this.producer.disconnect().catch(() => undefined);
      await this.app.close();
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.processors.map((p) => p.stop()));
    await this.producer.disconnect().catch(() => undefined);
    await this.app.destroy();
  }

  private sharedProducer(): Promise<Producer> {
    this.producerConnection ??= this.producer.connect().then(
      () => this.producer,
      (err: unknown) => {
        this.producerConnection = undefined;
        throw err;
      },
    );
    return this.producerConnection;
  }
}

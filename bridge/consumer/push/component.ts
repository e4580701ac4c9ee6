/**
 * All push subscriptions of a sidecar as one component: one Kafka client, one dead-letter producer
 * (connected on first need), one keep-alive pool to the app, one `PushSubscription` per entry.
 * Drained after the listeners: in-flight deliveries finish, final offsets are committed, then the
 * consumers leave their groups.
 */
import type { Tracer } from '@opentelemetry/api';
import { Partitioners, type Producer } from 'kafkajs';
import type { Component, Readiness } from '../../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../../services/runtime/config.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import { createKafkaClient } from '../../kafka/client.js';
import { AppClient } from './delivery.js';
import { Semaphore } from './ordering.js';
import { PushSubscription, type SubscriptionConfig } from './subscription.js';

export interface SubscriptionsOptions {
  readonly subscriptions: readonly SubscriptionConfig[];
  readonly kafka: DeepReadonly<KafkaConfig>;
  /** The app: `ingress.target`. */
  readonly target: string;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  /** Tests shorten these; defaults suit production. */
  readonly sessionTimeoutMs?: number;
  readonly lagIntervalMs?: number;
}

export class SubscriptionsComponent implements Component {
  readonly name = 'subscriptions';
  private readonly subscriptions: PushSubscription[];
  private readonly app: AppClient;
  private readonly producer: Producer;
  private producerConnection: Promise<Producer> | undefined;
  private drainPromise: Promise<void> | undefined;

  constructor(options: SubscriptionsOptions) {
    const client = createKafkaClient(
      { ...options.kafka, clientId: `${options.kafka.clientId}-push` },
      options.logger,
    );
    // Java-compatible partitioner: a dead letter lands on the partition a Java client would pick.
    this.producer = client.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const connections = options.subscriptions.reduce((sum, s) => sum + s.maxConcurrency, 0);
    this.app = new AppClient(options.target, Math.max(1, connections));
    this.subscriptions = options.subscriptions.map(
      (config) =>
        new PushSubscription({
          config,
          kafka: client,
          app: this.app,
          deadLetterProducer: () => this.deadLetterProducer(),
          semaphore: new Semaphore(config.maxConcurrency),
          metrics: options.metrics,
          logger: options.logger,
          tracer: options.tracer,
          ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
          ...(options.lagIntervalMs !== undefined ? { lagIntervalMs: options.lagIntervalMs } : {}),
        }),
    );
  }

  start(): Promise<void> {
    // Consumers connect and join in the background; readiness reports when each has joined.
    for (const subscription of this.subscriptions) subscription.start();
    return Promise.resolve();
  }

  readiness(): Readiness {
    const waiting = this.subscriptions.filter((s) => !s.isReady);
    if (waiting.length === 0) return { ready: true };
    return { ready: false, reason: waiting.map((s) => `${s.name}: ${s.notReadyReason}`).join('; ') };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      await Promise.allSettled(this.subscriptions.map((s) => s.drain()));
      await this.producer.disconnect().catch(() => undefined);
      await this.app.close();
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.subscriptions.map((s) => s.stop()));
    await this.producer.disconnect().catch(() => undefined);
    await this.app.destroy();
  }

  private deadLetterProducer(): Promise<Producer> {
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

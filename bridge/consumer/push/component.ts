/**
 * All push subscriptions of a sidecar as one component: one Kafka client, one dead-letter producer
 * (connected on first need), one keep-alive pool to the app, one `PushSubscription` per entry.
 * Drained after the listeners: in-flight deliveries finish, final offsets are committed, then the
 * consumers leave their groups.
 */
import type { Tracer } from '@opentelemetry/api';
import { Partitioners, type Producer } from 'kafkajs';
import type { Component, ComponentStatus, Readiness } from '../../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../../services/runtime/config.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import { createKafkaClient } from '../../kafka/client.js';
import { AppClient } from './delivery.js';
import type { FeedCapacity } from './feed.js';
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
  /** Bound of each partition's prefetch queue (tests shrink it). */
  readonly prefetch?: Partial<FeedCapacity>;
}

export class SubscriptionsComponent implements Component {
  readonly name = 'subscriptions';
  private readonly subscriptions: PushSubscription[];
  private readonly app: AppClient;
  private readonly producer: Producer;
  private readonly options: SubscriptionsOptions;
  /** The last failed delivery attempt of each subscription (status page). */
  private readonly lastDeliveryErrors = new Map<string, { at: string; error: string }>();
  private producerConnection: Promise<Producer> | undefined;
  private drainPromise: Promise<void> | undefined;

  constructor(options: SubscriptionsOptions) {
    this.options = options;
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
          app: this.trackDeliveryErrors(config.name),
          deadLetterProducer: () => this.deadLetterProducer(),
          appTarget: options.target,
          semaphore: new Semaphore(config.maxConcurrency),
          metrics: options.metrics,
          logger: options.logger,
          tracer: options.tracer,
          ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
          ...(options.lagIntervalMs !== undefined ? { lagIntervalMs: options.lagIntervalMs } : {}),
          ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {}),
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

  /**
   * Each subscription as the admin status page shows it: group, assigned partitions with their lag
   * (`mesh_consumer_lag`, refreshed every few seconds), which are paused, and the last failed delivery.
   */
  async status(): Promise<ComponentStatus> {
    const { metrics } = this.options;
    const lag = new Map<string, number>();
    for (const { labels, value } of (await metrics.consumerLag.get()).values) {
      lag.set(`${String(labels.group)}\u0000${String(labels.topic)}\u0000${String(labels.partition)}`, value);
    }
    const pausedCount = new Map<string, number>();
    for (const { labels, value } of (await metrics.subscriptionPausedPartitions.get()).values) {
      pausedCount.set(String(labels.subscription), value);
    }
    const subscriptions = this.subscriptions.map((subscription, index) => {
      const config = this.options.subscriptions[index];
      const state = subscriptionState(subscription, config.group, lag);
      const paused = new Set(state.paused ?? []);
      const partitions = state.assigned
        .map((key) => {
          const [topic, partition] = key.split('\u0000');
          return {
            topic,
            partition: Number(partition),
            lag: lag.get(`${config.group}\u0000${key}`) ?? null,
            // null: the subscription does not say which partitions are paused (only how many).
            paused: state.paused === undefined ? null : paused.has(key),
          };
        })
        .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
      const pausedPartitions = pausedCount.get(subscription.name) ?? paused.size;
      return {
        name: subscription.name,
        group: config.group,
        topics: config.topics ? [...config.topics] : [],
        topicPattern: config.topicPattern ?? null,
        path: config.path,
        mode: config.mode,
        joined: state.joined,
        crashed: state.crashed,
        partitions,
        lag: partitions.reduce((sum, p) => sum + (p.lag ?? 0), 0),
        paused: pausedPartitions > 0,
        pausedPartitions,
        lastDeliveryError: this.lastDeliveryErrors.get(subscription.name) ?? null,
      };
    });
    return { subscriptions };
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

  /**
   * The shared app client as one subscription sees it, noting its last failed attempt (a connection
   * error, a timeout or a non-2xx answer). A prototype view, so the pool stays shared.
   */
  private trackDeliveryErrors(subscription: string): AppClient {
    const app = this.app;
    const view = Object.create(app) as AppClient;
    view.post = async (...args: Parameters<AppClient['post']>) => {
      const result = await app.post(...args);
      const error =
        result.kind === 'answer'
          ? result.status >= 200 && result.status < 300
            ? undefined
            : `HTTP ${result.status}`
          : result.kind === 'app-down'
            ? `app down: ${result.error}`
            : result.error;
      if (error !== undefined) {
        this.lastDeliveryErrors.set(subscription, { at: new Date().toISOString(), error });
      }
      return result;
    };
    return view;
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

interface SubscriptionState {
  readonly joined: boolean;
  readonly crashed: string | null;
  /** `topic\0partition` keys. */
  readonly assigned: readonly string[];
  /** Absent when unknown. */
  readonly paused?: readonly string[] | undefined;
}

/**
 * The subscription's own snapshot when it offers one (`statusSnapshot()`); otherwise what its public
 * state and the lag gauge tell: joined or not, and the partitions that have a lag series in its group.
 */
function subscriptionState(
  subscription: PushSubscription,
  group: string,
  lag: ReadonlyMap<string, number>,
): SubscriptionState {
  const own = (subscription as { statusSnapshot?: () => SubscriptionState }).statusSnapshot;
  if (typeof own === 'function') return own.call(subscription);
  const prefix = `${group}\u0000`;
  return {
    joined: subscription.isReady,
    crashed: subscription.isReady ? null : subscription.notReadyReason,
    assigned: [...lag.keys()].filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length)),
  };
}

/**
 * All push subscriptions of a sidecar as one component: one Kafka client, one dead-letter producer
 * (connected on first need), one keep-alive pool to the app, one `PushSubscription` per entry.
 * Drained after the listeners: in-flight deliveries finish, final offsets are committed, then the
 * consumers leave their groups.
 */
import type { Tracer } from '@opentelemetry/api';
import type { Component, ComponentStatus, Readiness } from '../../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../../services/runtime/config.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { MeshMetrics } from '../../../services/runtime/metrics.js';
import { GroupMembers } from '../group-members.js';
import type { AppClient } from './delivery.js';
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
  private readonly subscriptions: GroupMembers<SubscriptionConfig, PushSubscription>;
  private readonly options: SubscriptionsOptions;
  /** The last failed delivery attempt of each subscription (status page). */
  private readonly lastDeliveryErrors = new Map<string, { at: string; error: string }>();

  constructor(options: SubscriptionsOptions) {
    this.options = options;
    this.subscriptions = new GroupMembers({
      configs: options.subscriptions,
      kafka: options.kafka,
      clientIdSuffix: 'push',
      target: options.target,
      logger: options.logger,
      create: (config, { client, app, producer }) =>
        new PushSubscription({
          config,
          kafka: client,
          app: this.trackDeliveryErrors(app, config.name),
          deadLetterProducer: producer,
          appTarget: options.target,
          semaphore: new Semaphore(config.maxConcurrency),
          metrics: options.metrics,
          logger: options.logger,
          tracer: options.tracer,
          ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
          ...(options.lagIntervalMs !== undefined ? { lagIntervalMs: options.lagIntervalMs } : {}),
          ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {}),
        }),
    });
  }

  start(): Promise<void> {
    return this.subscriptions.start();
  }

  readiness(): Readiness {
    return this.subscriptions.readiness();
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
    const subscriptions = this.subscriptions.members.map((subscription, index) => {
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
    return this.subscriptions.drain();
  }

  stop(): Promise<void> {
    return this.subscriptions.stop();
  }

  /**
   * The shared app client as one subscription sees it, noting its last failed attempt (a connection
   * error, a timeout or a non-2xx answer). A prototype view, so the pool stays shared.
   */
  private trackDeliveryErrors(app: AppClient, subscription: string): AppClient {
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

import type { Tracer } from '@opentelemetry/api';
import type { Admin, Producer } from 'kafkajs';
import type { Component, ComponentStatus, Readiness } from '../services/runtime/component.js';
import type { BridgeConfig, DeepReadonly, KafkaConfig } from '../services/runtime/config.js';
import { HttpListener } from '../services/runtime/http.js';
import type { Logger } from '../services/runtime/logging.js';
import type { MeshMetrics } from '../services/runtime/metrics.js';
import { createBridgeApp } from './api.js';
import { PullConsumerRegistry } from './consumer/pull/registry.js';
import type { SubscriptionConfig } from './consumer/push/subscription.js';
import { createKafkaClient } from './kafka/client.js';
import { TopicMetadata } from './kafka/metadata.js';
import { AuditWriter } from './lightmesh/audit.js';
import { BridgeOpenApi } from './openapi.js';
import { IdempotencyStore } from './producer/idempotency.js';
import { ProduceService } from './producer/produce-service.js';
import { TopicSchemas } from './producer/topic-schemas.js';

export interface BridgeOptions {
  readonly bridge: DeepReadonly<BridgeConfig>;
  readonly kafka: DeepReadonly<KafkaConfig>;
  /** Relative topic schema paths are resolved against this directory (the config file's). */
  readonly baseDir: string;
  readonly version: string;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  /** The app (`ingress.target`) and the push subscriptions, for light-mesh dead-letter replay. */
  readonly lightmeshBackend?: {
    readonly target: string;
    readonly subscriptions: readonly SubscriptionConfig[];
  };
}

const CONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 5_000];

/**
 * The bridge listener and the sidecar's one shared producer. The listener binds at start; the
 * producer connects in the background, and the bridge is ready once it has. Drain lets in-flight
 * produce requests get their acknowledgements, flushes what `?async=true` handed over, then
 * disconnects.
 */
export class BridgeComponent implements Component {
  readonly name = 'bridge';
  private readonly listener: HttpListener;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private readonly produce: ProduceService;
  private readonly consumers: PullConsumerRegistry;
  private readonly background = new Set<Promise<unknown>>();
  private connected = false;
  private lastConnectError: string | undefined;
  private connecting: Promise<void> | undefined;
  private stopped = false;
  private drainPromise: Promise<void> | undefined;

  constructor(private readonly options: BridgeOptions) {
    const { bridge, kafka, metrics, logger, tracer } = options;
    const client = createKafkaClient(kafka, logger);
    this.producer = client.producer({
      idempotent: true,
      // Bounded, so a request learns within its delivery timeout that Kafka is away instead of
      // kafkajs retrying for ever; the answer then says which records were not acknowledged.
      retry: { retries: bridge.producer.retries, initialRetryTime: 100, maxRetryTime: 1_000 },
      allowAutoTopicCreation: false,
    });
    this.admin = client.admin();
    const metadata = new TopicMetadata(this.admin, bridge.metadataMaxAgeMs);
    this.consumers = new PullConsumerRegistry({
      kafka: client,
      admin: this.admin,
      logger: logger.child({ component: 'pull-consumers' }),
      idleTimeoutMs: bridge.consumerIdleTimeoutMs,
      maxConsumers: bridge.maxConsumers,
    });
    this.produce = new ProduceService({
      producer: this.producer,
      metadata,
      schemas: new TopicSchemas(bridge.topics, options.baseDir),
      metrics,
      tracer,
      deliveryTimeoutMs: bridge.deliveryTimeoutMs,
      autoCreateTopics: bridge.autoCreateTopics,
      compression: bridge.producer.compression,
      maxBatchRecords: bridge.producer.maxBatchRecords,
      maxBatchBytes: bridge.producer.maxBatchBytes,
    });
    const app = createBridgeApp({
      produce: this.produce,
      metadata,
      openapi: new BridgeOpenApi(),
      idempotency: new IdempotencyStore(bridge.idempotency.windowMs, bridge.idempotency.maxEntries),
      limits: bridge,
      version: options.version,
      tracer,
      metrics,
      logger,
      trackBackground: (work) => {
        this.background.add(work);
        void work.finally(() => this.background.delete(work));
      },
      consumers: this.consumers,
      lightmesh: {
        options: bridge.lightmesh,
        audit: new AuditWriter({
          settings: bridge.lightmesh.audit,
          serviceId: bridge.lightmesh.serviceId,
          producer: () => Promise.resolve(this.producer),
          logger: logger.child({ component: 'audit' }),
        }),
        readiness: () => this.readiness(),
        admin: this.admin,
        ...(options.lightmeshBackend
          ? {
              backend: {
                ...options.lightmeshBackend,
                producer: () => Promise.resolve(this.producer),
              },
            }
          : {}),
      },
    });
    this.listener = new HttpListener({
      name: 'bridge',
      host: bridge.host,
      port: bridge.port,
      tls: bridge.tls,
      handler: app,
      metrics,
      logger,
    });
    this.producer.on(this.producer.events.DISCONNECT, () => {
      this.connected = false;
    });
  }

  get url(): string {
    return this.listener.url;
  }

  async start(): Promise<void> {
    await this.listener.listen();
    this.connecting = this.connectUntilStopped();
  }

  readiness(): Readiness {
    if (!this.listener.isListening) return { ready: false, reason: 'bridge listener not bound' };
    if (!this.connected) {
      return {
        ready: false,
        reason: `Kafka producer not connected${this.lastConnectError ? `: ${this.lastConnectError}` : ''}`,
      };
    }
    return { ready: true };
  }

  /** Listener, producer connection and pull consumer instances, for the admin status page. */
  status(): ComponentStatus {
    return {
      listener: this.listener.status(),
      kafkaConnected: this.connected,
      lastConnectError: this.lastConnectError ?? null,
      pullConsumers: this.consumers.status(),
    };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      // Waiting polls answer what they have, so the listener's in-flight requests end promptly.
      this.consumers.beginDrain();
      await this.listener.drain();
      // Pull consumers close before the admin client they commit through disconnects.
      await this.consumers.closeAll();
      await Promise.allSettled([...this.background]);
      await this.produce.flush();
      await this.disconnect();
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    await this.listener.stop();
    await this.consumers.closeAll();
    await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    this.stopped = true;
    await this.connecting;
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
    this.connected = false;
  }

  private async connectUntilStopped(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt += 1) {
      try {
        await this.admin.connect();
        await this.producer.connect();
        this.connected = true;
        this.lastConnectError = undefined;
        this.options.logger.info({ bootstrap: this.options.kafka.bootstrap }, 'bridge producer connected');
        return;
      } catch (err) {
        this.lastConnectError = (err as Error).message;
        this.options.logger.warn(
          { err: this.lastConnectError, attempt },
          'bridge producer cannot connect yet',
        );
        const wait = CONNECT_BACKOFF_MS[Math.min(attempt, CONNECT_BACKOFF_MS.length - 1)];
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}

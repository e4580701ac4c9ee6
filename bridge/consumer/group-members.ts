/**
 * The plumbing shared by the components that run consumer-group members (push subscriptions,
 * stream processors): one Kafka client, one idempotent producer (connected on first need), one
 * keep-alive pool to the app sized by the members' concurrency, and the members' start, readiness,
 * drain and stop. The component keeps its own members' construction and extras (status page).
 */
import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import type { Readiness } from '../../services/runtime/component.js';
import type { DeepReadonly, KafkaConfig } from '../../services/runtime/config.js';
import type { Logger } from '../../services/runtime/logging.js';
import { createKafkaClient } from '../kafka/client.js';
import { AppClient } from './push/delivery.js';

/** One consumer-group member as its component sees it. */
export interface Member {
  readonly name: string;
  readonly isReady: boolean;
  readonly notReadyReason: string;
  start(): void;
  drain(): Promise<void>;
  stop(): Promise<void>;
}

/** What a member gets from the shared plumbing. */
export interface MemberPlumbing {
  readonly client: Kafka;
  readonly app: AppClient;
  /** The connected shared producer. */
  readonly producer: () => Promise<Producer>;
}

export interface GroupMembersOptions<C extends { readonly maxConcurrency: number }, M extends Member> {
  readonly configs: readonly C[];
  readonly kafka: DeepReadonly<KafkaConfig>;
  /** Appended to the configured client id: `<clientId>-<suffix>`. */
  readonly clientIdSuffix: string;
  /** The app: `ingress.target`. */
  readonly target: string;
  readonly logger: Logger;
  readonly create: (config: C, plumbing: MemberPlumbing) => M;
}

export class GroupMembers<C extends { readonly maxConcurrency: number }, M extends Member> {
  readonly members: M[];
  private readonly app: AppClient;
  private readonly producer: Producer;
  private producerConnection: Promise<Producer> | undefined;
  private drainPromise: Promise<void> | undefined;

  constructor(options: GroupMembersOptions<C, M>) {
    const client = createKafkaClient(
      { ...options.kafka, clientId: `${options.kafka.clientId}-${options.clientIdSuffix}` },
      options.logger,
    );
    // Java-compatible partitioner: a record lands on the partition a Java client would pick.
    this.producer = client.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const connections = options.configs.reduce((sum, c) => sum + c.maxConcurrency, 0);
    this.app = new AppClient(options.target, Math.max(1, connections));
    const plumbing: MemberPlumbing = { client, app: this.app, producer: () => this.sharedProducer() };
    this.members = options.configs.map((config) => options.create(config, plumbing));
  }

  start(): Promise<void> {
    // Consumers connect and join in the background; readiness reports when each has joined.
    for (const member of this.members) member.start();
    return Promise.resolve();
  }

  readiness(): Readiness {
    const waiting = this.members.filter((m) => !m.isReady);
    if (waiting.length === 0) return { ready: true };
    return { ready: false, reason: waiting.map((m) => `${m.name}: ${m.notReadyReason}`).join('; ') };
  }

  drain(): Promise<void> {
    this.drainPromise ??= (async () => {
      await Promise.allSettled(this.members.map((m) => m.drain()));
      await this.producer.disconnect().catch(() => undefined);
      await this.app.close();
    })();
    return this.drainPromise;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.members.map((m) => m.stop()));
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

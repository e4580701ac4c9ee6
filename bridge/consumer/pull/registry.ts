import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { MeshError } from '../../../services/runtime/errors.js';
import type { Logger } from '../../../services/runtime/logging.js';
import { PullConsumerInstance, type PullConsumerSettings } from './instance.js';

export interface PullConsumerRegistryOptions {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly logger: Logger;
  /** `bridge.consumerIdleTimeoutMs`. */
  readonly idleTimeoutMs: number;
  /** `bridge.maxConsumers`. */
  readonly maxConsumers: number;
  readonly bufferMaxRecords?: number;
  readonly bufferMaxBytes?: number;
  readonly autoCommitIntervalMs?: number;
}

export type NewInstanceSettings = Omit<PullConsumerSettings, 'name'> & { readonly name?: string };

/**
 * The pull consumer instances of one bridge, by group and name. Closes instances idle for longer
 * than the timeout, bounds how many there are, and closes all of them on drain.
 */
export class PullConsumerRegistry {
  private readonly instances = new Map<string, PullConsumerInstance>();
  private readonly sweeper: NodeJS.Timeout;
  private draining = false;

  constructor(private readonly options: PullConsumerRegistryOptions) {
    const interval = Math.min(5_000, Math.max(20, Math.floor(options.idleTimeoutMs / 4)));
    this.sweeper = setInterval(() => this.sweep(), interval);
    this.sweeper.unref();
  }

  get size(): number {
    return this.instances.size;
  }

  /** Every open instance, for the admin status page. */
  status(now = Date.now()): ReturnType<PullConsumerInstance['status']>[] {
    return [...this.instances.values()]
      .filter((instance) => !instance.isClosed)
      .map((instance) => instance.status(now));
  }

  create(settings: NewInstanceSettings): PullConsumerInstance {
    if (this.draining) {
      throw new MeshError('MESH_DRAINING', 'the bridge is shutting down', {
        headers: { 'retry-after': '1' },
      });
    }
    const name = settings.name ?? `mesh-bridge-consumer-${randomUUID()}`;
    const key = keyOf(settings.group, name);
    if (this.instances.has(key)) {
      throw new MeshError(
        'MESH_CONSUMER_EXISTS',
        `a consumer instance named ${name} already exists in group ${settings.group}`,
      );
    }
    if (this.instances.size >= this.options.maxConsumers) {
      throw new MeshError(
        'MESH_RATE_LIMITED',
        `this bridge already has ${this.instances.size} consumer instances (bridge.maxConsumers); delete one first`,
        { headers: { 'retry-after': '1' } },
      );
    }
    const instance = new PullConsumerInstance(
      { ...settings, name },
      {
        kafka: this.options.kafka,
        admin: this.options.admin,
        logger: this.options.logger,
        bufferMaxRecords: this.options.bufferMaxRecords ?? 10_000,
        bufferMaxBytes: this.options.bufferMaxBytes ?? 8 * 1024 * 1024,
        autoCommitIntervalMs: this.options.autoCommitIntervalMs ?? 5_000,
      },
    );
    this.instances.set(key, instance);
    this.options.logger.info({ group: settings.group, instance: name }, 'pull consumer created');
    return instance;
  }

  /** The instance, or 404 (40403). */
  get(group: string, name: string): PullConsumerInstance {
    const instance = this.instances.get(keyOf(group, name));
    if (!instance || instance.isClosed) {
      throw new MeshError('MESH_CONSUMER_NOT_FOUND', `no consumer instance ${name} in group ${group}`);
    }
    return instance;
  }

  async delete(group: string, name: string): Promise<void> {
    const instance = this.get(group, name);
    this.instances.delete(keyOf(group, name));
    await instance.close();
    this.options.logger.info({ group, instance: name }, 'pull consumer deleted');
  }

  /** Drain, first step: no new instances, and waiting polls answer at once. */
  beginDrain(): void {
    this.draining = true;
    for (const instance of this.instances.values()) instance.stopWaiting();
  }

  /** Closes every instance (auto-commit ones commit what they handed out). Idempotent. */
  async closeAll(): Promise<void> {
    this.beginDrain();
    clearInterval(this.sweeper);
    const all = [...this.instances.values()];
    this.instances.clear();
    await Promise.allSettled(all.map((instance) => instance.close()));
  }

  /** Closes instances idle for longer than the timeout. */
  sweep(now = Date.now()): void {
    for (const [key, instance] of this.instances) {
      if (instance.idleFor(now) <= this.options.idleTimeoutMs) continue;
      this.instances.delete(key);
      const { group, name } = instance.settings;
      this.options.logger.info({ group, instance: name }, 'pull consumer idle; closing it');
      void instance.close();
    }
  }
}

function keyOf(group: string, name: string): string {
  return `${group}\0${name}`;
}

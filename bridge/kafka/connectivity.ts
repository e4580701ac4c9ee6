/**
 * The `kafka` component: is the cluster reachable with our credentials? It fetches cluster metadata
 * from the bootstrap brokers, one after the other, at start-up and then every
 * `kafka.healthCheckIntervalMs` (every second while failing), and `/readyz` shows the answer under
 * `kafka`, naming what fails: the broker and the mechanism for refused credentials, the broker for
 * a refused TLS handshake, every bootstrap broker's error when none answers.
 *
 * At start-up, refused credentials or certificates are fatal when `kafka.onStartupFailure` is
 * `exit` (start() rejects, so the process logs the error and exits 1); with `not-ready` the sidecar
 * runs, not ready, and keeps checking (secret files are re-read for every connection).
 */
import type { Component, ComponentStatus, Readiness } from '../../services/runtime/component.js';
import type { Logger } from '../../services/runtime/logging.js';
import { mechanismName, readSecretFile, secretFiles, SecretFileError } from './auth.js';
import { createKafkaClient, type KafkaClientSettings } from './client.js';
import { brokerOf, isAuthenticationError, isTlsError, rootMessage } from './errors.js';

export type ProbeResult =
  | { ok: true; broker: string; brokers: number }
  | { ok: false; kind: 'auth' | 'tls' | 'config' | 'unreachable'; message: string; broker?: string };

/** Refused credentials, certificate or secret file at start-up, with `kafka.onStartupFailure: exit`. */
export class KafkaStartupError extends Error {
  override readonly name = 'KafkaStartupError';
  constructor(
    message: string,
    readonly kind: 'auth' | 'tls' | 'config',
    readonly broker: string | undefined,
  ) {
    super(message);
  }
}

const FAILING_INTERVAL_MS = 1_000;

/**
 * One metadata round trip per bootstrap broker, in order, until one answers. A fresh client each
 * time (no retries, no kafkajs logging): the result is about this moment, and naming the broker that
 * refused us needs one broker per client.
 */
export async function probeKafka(settings: KafkaClientSettings, logger: Logger): Promise<ProbeResult> {
  for (const { key, path } of secretFiles(settings)) {
    try {
      readSecretFile(key, path);
    } catch (err) {
      if (err instanceof SecretFileError) return { ok: false, kind: 'config', message: err.message };
      throw err;
    }
  }
  const failures: string[] = [];
  for (const broker of settings.bootstrap) {
    const client = createKafkaClient({ ...settings, bootstrap: [broker] }, logger, {
      retries: 0,
      silent: true,
    });
    const admin = client.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return { ok: true, broker, brokers: cluster.brokers.length };
    } catch (err) {
      const at = brokerOf(err) ?? broker;
      if (isAuthenticationError(err)) {
        const sasl = settings.sasl;
        const user = sasl?.username === undefined ? '' : ` as "${sasl.username}"`;
        return {
          ok: false,
          kind: 'auth',
          broker: at,
          message: `Kafka SASL ${mechanismName(sasl)} authentication${user} refused by broker ${at}: ${rootMessage(err)}`,
        };
      }
      if (isTlsError(err)) {
        return {
          ok: false,
          kind: 'tls',
          broker: at,
          message: `Kafka TLS handshake with broker ${at} failed: ${rootMessage(err)}`,
        };
      }
      failures.push(`${broker}: ${rootMessage(err)}`);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
  return {
    ok: false,
    kind: 'unreachable',
    message: `no Kafka bootstrap broker answered a metadata request (${failures.join('; ')})`,
  };
}

export interface KafkaConnectivityOptions {
  readonly kafka: KafkaClientSettings;
  readonly logger: Logger;
}

export class KafkaConnectivity implements Component {
  readonly name = 'kafka';
  private last: ProbeResult | undefined;
  private checkedAt: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: KafkaConnectivityOptions) {}

  async start(): Promise<void> {
    await this.check();
    const last = this.last;
    if (
      last &&
      !last.ok &&
      last.kind !== 'unreachable' &&
      this.options.kafka.onStartupFailure !== 'not-ready'
    ) {
      this.stopped = true;
      throw new KafkaStartupError(last.message, last.kind, last.broker);
    }
    this.schedule();
  }

  readiness(): Readiness {
    if (this.last === undefined) return { ready: false, reason: 'Kafka not checked yet' };
    if (this.last.ok) return { ready: true };
    return { ready: false, reason: this.last.message };
  }

  status(): ComponentStatus {
    const last = this.last;
    return {
      reachable: last?.ok ?? false,
      checkedAt: this.checkedAt ?? null,
      broker: last?.broker ?? null,
      error: last && !last.ok ? last.message : null,
      mechanism: mechanismName(this.options.kafka.sasl),
      tls: this.options.kafka.tls !== undefined,
    };
  }

  async drain(): Promise<void> {
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    const interval = this.last?.ok
      ? (this.options.kafka.healthCheckIntervalMs ?? 10_000)
      : Math.min(FAILING_INTERVAL_MS, this.options.kafka.healthCheckIntervalMs ?? FAILING_INTERVAL_MS);
    this.timer = setTimeout(() => {
      this.running = this.check().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, interval);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const { logger, kafka } = this.options;
    let result: ProbeResult;
    try {
      result = await probeKafka(kafka, logger);
    } catch (err) {
      result = { ok: false, kind: 'unreachable', message: `Kafka check failed: ${(err as Error).message}` };
    }
    const previous = this.last;
    this.last = result;
    this.checkedAt = new Date().toISOString();
    // Log changes only: a broker that stays away is one line, not one per second.
    if (result.ok && previous?.ok !== true) {
      logger.info({ component: 'kafka', broker: result.broker, brokers: result.brokers }, 'Kafka reachable');
    } else if (!result.ok && (previous === undefined || previous.ok || previous.message !== result.message)) {
      logger.warn(
        { component: 'kafka', kind: result.kind, broker: result.broker, bootstrap: kafka.bootstrap },
        result.message,
      );
    }
  }
}

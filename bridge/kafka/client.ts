import { Kafka, logLevel, type KafkaConfig as KafkajsConfig, type LogEntry, type logCreator } from 'kafkajs';
import type { DeepReadonly, KafkaConfig } from '../../services/runtime/config.js';
import type { Logger } from '../../services/runtime/logging.js';
import { OAuthBearerTokens, saslOptions, tlsOptions, type OAuthBearerConfig } from './auth.js';

/**
 * The `kafka` config section. Only `bootstrap` and `clientId` are needed; everything else falls
 * back to the schema's defaults, so tests and tools can pass just those two.
 */
export type KafkaClientSettings = Pick<DeepReadonly<KafkaConfig>, 'bootstrap' | 'clientId'> &
  Partial<Omit<DeepReadonly<KafkaConfig>, 'bootstrap' | 'clientId'>>;

export interface KafkaClientOptions {
  /** Overrides `kafka.retry` for every client made from this one (the connectivity probe wants none). */
  readonly retries?: number;
  /** Drop kafkajs' own log lines (the connectivity probe reports failures itself). */
  readonly silent?: boolean;
}

const PINO_LEVEL: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** kafkajs logs through the sidecar's pino logger, one JSON line per entry, tagged `component: kafka`. */
function pinoLogCreator(logger: Logger): logCreator {
  const kafkaLogger = logger.child({ component: 'kafka' });
  return () =>
    ({ level, namespace, log }: LogEntry) => {
      const { message, ...fields } = log;
      const method = PINO_LEVEL[level] ?? 'info';
      kafkaLogger[method]({ namespace, ...fields }, message);
    };
}

/** One OAUTHBEARER token cache per token endpoint and client, shared by every client of the process. */
const tokenSources = new Map<string, OAuthBearerTokens>();

function tokensFor(config: OAuthBearerConfig): OAuthBearerTokens {
  const key = JSON.stringify(config);
  let tokens = tokenSources.get(key);
  if (!tokens) tokenSources.set(key, (tokens = new OAuthBearerTokens(config)));
  return tokens;
}

/** The kafkajs client config for a `kafka` section: TLS, SASL, timeouts, retries, logging. */
export function kafkajsConfig(
  settings: KafkaClientSettings,
  logger: Logger,
  options: KafkaClientOptions = {},
): KafkajsConfig {
  const retry = settings.retry;
  const config: KafkajsConfig = {
    clientId: settings.clientId,
    brokers: [...settings.bootstrap],
    connectionTimeout: settings.connectionTimeoutMs ?? 3_000,
    authenticationTimeout: settings.authenticationTimeoutMs ?? 10_000,
    requestTimeout: settings.requestTimeoutMs ?? 30_000,
    retry: {
      retries: options.retries ?? retry?.retries ?? 5,
      initialRetryTime: retry?.initialBackoffMs ?? 300,
      maxRetryTime: retry?.maxBackoffMs ?? 30_000,
    },
    // WARN and up: kafkajs logs every reconnect at INFO, which floods a sidecar during a broker restart.
    logLevel: options.silent ? logLevel.NOTHING : logLevel.WARN,
    logCreator: pinoLogCreator(logger),
  };
  if (settings.tls) config.ssl = tlsOptions(settings.tls);
  if (settings.sasl) {
    const { oauthbearer } = settings.sasl;
    config.sasl = saslOptions(settings.sasl, oauthbearer ? tokensFor(oauthbearer) : undefined);
  }
  return config;
}

/**
 * The one place every Kafka client of the sidecar comes from (bridge producer and admin, pull and
 * push consumers, dead-letter producer, connectivity checks), so TLS, SASL, timeouts and retries
 * apply to all of them alike. Secret files are read when a connection needs them (see auth.ts);
 * whether the credentials work is found out by the `kafka` component at start-up (connectivity.ts).
 */
export function createKafkaClient(
  settings: KafkaClientSettings,
  logger: Logger,
  options: KafkaClientOptions = {},
): Kafka {
  return new Kafka(kafkajsConfig(settings, logger, options));
}

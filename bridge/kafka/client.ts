import { Kafka, logLevel, type LogEntry, type logCreator } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';

export interface KafkaClientSettings {
  readonly bootstrap: readonly string[];
  readonly clientId: string;
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

/** One kafkajs client per sidecar; producers, admin and consumers are made from it. */
export function createKafkaClient(settings: KafkaClientSettings, logger: Logger): Kafka {
  return new Kafka({
    clientId: settings.clientId,
    brokers: [...settings.bootstrap],
    // WARN and up: kafkajs logs every reconnect at INFO, which floods a sidecar during a broker restart.
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator(logger),
  });
}

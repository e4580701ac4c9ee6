/**
 * light-mesh audit records: one per produced and per consumed record, written to an audit topic
 * (keyed by correlation id) or to the log. Auditing never fails the work it audits: a failed write
 * is logged and the records are lost.
 */
import { randomUUID } from 'node:crypto';
import type { Message, Producer } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';

export type AuditType = 'PRODUCER' | 'REACTIVE_CONSUMER' | 'ACTIVE_CONSUMER';
export type AuditStatus = 'SUCCESS' | 'FAILURE';

export interface AuditSettings {
  readonly enabled: boolean;
  readonly target: 'topic' | 'log';
  readonly topic: string;
}

export interface AuditRecord {
  readonly id: string;
  readonly serviceId: string;
  readonly auditType: AuditType;
  readonly topic: string;
  readonly partition: number | null;
  readonly offset: number | null;
  readonly correlationId: string | null;
  readonly traceabilityId: string | null;
  readonly key: unknown;
  readonly auditStatus: AuditStatus;
  readonly stacktrace: string | null;
  readonly timestamp: number;
}

export type AuditFields = Omit<AuditRecord, 'id' | 'serviceId' | 'timestamp'> & {
  readonly timestamp?: number;
};

export class AuditWriter {
  constructor(
    private readonly options: {
      readonly settings: AuditSettings;
      readonly serviceId: string;
      /** The connected producer audit records are sent with (target `topic`). */
      readonly producer: () => Promise<Producer>;
      readonly logger: Logger;
    },
  ) {}

  get enabled(): boolean {
    return this.options.settings.enabled;
  }

  /** Builds the full audit records (id, serviceId, timestamp added). */
  build(entries: readonly AuditFields[]): AuditRecord[] {
    return entries.map((entry) => ({
      id: randomUUID(),
      serviceId: this.options.serviceId,
      ...entry,
      timestamp: entry.timestamp ?? Date.now(),
    }));
  }

  /** Writes one audit record per entry; resolves once written (or the failure is logged). */
  async write(entries: readonly AuditFields[]): Promise<void> {
    const { settings, logger } = this.options;
    if (!settings.enabled || entries.length === 0) return;
    const records = this.build(entries);
    if (settings.target === 'log') {
      for (const audit of records) logger.info({ audit }, 'audit');
      return;
    }
    const messages: Message[] = records.map((audit) => ({
      key: audit.correlationId,
      value: JSON.stringify(audit),
    }));
    try {
      const producer = await this.options.producer();
      await producer.send({ topic: settings.topic, acks: -1, messages });
    } catch (err) {
      logger.error(
        { err: (err as Error).message, topic: settings.topic, count: records.length },
        'audit records not written',
      );
    }
  }
}

import { propagation, SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import { CompressionTypes, Partitioners, type Message, type PartitionMetadata, type Producer } from 'kafkajs';
import { MeshError, type FieldError } from '../../services/runtime/errors.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { isUnknownTopicError, type TopicMetadata } from '../kafka/metadata.js';
import { TopicSender, type RecordOutcome } from './topic-sender.js';
import {
  decodeRecords,
  schemaValueOf,
  type DecodedRecord,
  type EmbeddedFormat,
  type RestRecord,
} from './records.js';
import type { TopicSchemas } from './topic-schemas.js';

/** One entry of the answer: the offset of an acknowledged record, or why it is not acknowledged. */
export type OffsetEntry = { partition: number; offset: number } | { error_code: number; message: string };

export interface ProduceRequest {
  readonly topic: string;
  /** Set by `POST /topics/{topic}/partitions/{partition}`. */
  readonly partition?: number | undefined;
  readonly format: EmbeddedFormat;
  readonly records: readonly RestRecord[];
  /** The request's trace context; the PRODUCER span is its child. */
  readonly parentContext: Context;
  /** Indexes of records to leave out (already acknowledged by an earlier attempt with the same key). */
  readonly skip?: ReadonlySet<number>;
}

export interface ProduceResult {
  /** 200 when every record is acknowledged; else 503 (Kafka) or 404 (unknown partition). */
  readonly status: 200 | 404 | 503;
  /** One entry per record of the request; skipped records are `undefined`. */
  readonly offsets: (OffsetEntry | undefined)[];
  /**
   * The same entries once every record sent has its real outcome: differs from `offsets` only for
   * records still in flight when the delivery timeout answered for them.
   */
  readonly final: Promise<(OffsetEntry | undefined)[]>;
}

export interface ProduceServiceOptions {
  readonly producer: Producer;
  readonly metadata: TopicMetadata;
  readonly schemas: TopicSchemas;
  readonly metrics: MeshMetrics;
  readonly tracer: Tracer;
  readonly deliveryTimeoutMs: number;
  readonly autoCreateTopics: boolean;
  readonly compression: 'none' | 'gzip';
  readonly maxBatchRecords: number;
  readonly maxBatchBytes: number;
}

const COMPRESSION: Record<'none' | 'gzip', CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
};

/**
 * REST records to Kafka: decode, check against the topic schema (all records before any is
 * sent), choose partitions as any Kafka client would (murmur2 of the key), write the trace context
 * into the headers, and send through one serial sender per partition. Answers exactly which
 * records Kafka acknowledged.
 */
export class ProduceService {
  private readonly senders = new Map<string, TopicSender>();
  // Kafka's default partitioner (murmur2 of the key, as the Java client): same key, same partition.
  private readonly partitioner = Partitioners.DefaultPartitioner();

  constructor(private readonly options: ProduceServiceOptions) {}

  /** Decodes and checks every record; throws a 422 MeshError listing every problem. */
  prepare(request: Pick<ProduceRequest, 'topic' | 'format' | 'records'>): DecodedRecord[] {
    const { records, errors } = decodeRecords(request.format, request.records);
    const { schemas } = this.options;
    if (errors.length > 0) {
      throw new MeshError(
        'MESH_INVALID_RECORD',
        `${errors.length} invalid field(s) in the records; nothing was produced`,
        {
          errors,
        },
      );
    }
    if (schemas.has(request.topic)) {
      const schemaErrors: FieldError[] = [];
      request.records.forEach((record, index) => {
        const value = schemaValueOf(request.format, record, records[index]);
        if (!value.ok) {
          schemaErrors.push({
            in: 'body',
            path: `/records/${index}/value`,
            message: 'must be JSON to be checked against the topic schema',
          });
        } else {
          schemaErrors.push(...schemas.check(request.topic, index, value.value));
        }
      });
      if (schemaErrors.length > 0) {
        const failing = [...new Set(schemaErrors.map((e) => Number(e.path.split('/')[2])))];
        throw new MeshError(
          'MESH_SCHEMA_MISMATCH',
          `record(s) ${failing.join(', ')} fail the schema of topic ${request.topic}; nothing was produced`,
          { errors: schemaErrors },
        );
      }
    }
    return records;
  }

  async produce(request: ProduceRequest, decoded: DecodedRecord[]): Promise<ProduceResult> {
    const { topic } = request;
    const { metrics, tracer } = this.options;
    const started = process.hrtime.bigint();
    const span = tracer.startSpan(
      `send ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': topic,
          'messaging.batch.message_count': decoded.length - (request.skip?.size ?? 0),
        },
      },
      request.parentContext,
    );
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(request.parentContext, span), carrier);

    try {
      const partitions = await this.partitionsOf(topic);
      const offsets: (OffsetEntry | undefined)[] = new Array<OffsetEntry | undefined>(decoded.length);
      const batch: { index: number; message: Message; partition: number; bytes: number }[] = [];
      decoded.forEach((record, index) => {
        if (request.skip?.has(index)) return;
        const explicit = request.partition ?? record.partition;
        const message: Message = {
          key: record.key,
          value: record.value,
          // The request's trace context replaces any traceparent the client put in the record.
          headers: { ...record.headers, ...carrier },
          ...(record.timestamp === undefined ? {} : { timestamp: record.timestamp }),
        };
        if (explicit !== undefined && !partitions.some((p) => p.partitionId === explicit)) {
          offsets[index] = new MeshError(
            'MESH_PARTITION_NOT_FOUND',
            `partition ${explicit} of topic ${topic} not found`,
          ).toBridgeError();
          return;
        }
        const partition = explicit ?? this.partitioner({ topic, partitionMetadata: partitions, message });
        batch.push({ index, message, partition, bytes: record.bytes });
      });

      const deadline = AbortSignal.timeout(this.options.deliveryTimeoutMs);
      const finalOffsets = [...offsets];
      const sent = this.senderFor(topic, partitions).send(batch, deadline);
      const final = sent.final.then((outcomes) => {
        outcomes.forEach((outcome, position) => {
          const { index, bytes } = batch[position];
          finalOffsets[index] = toOffsetEntry(outcome);
          if ('offset' in outcome) metrics.bridgeProducedBytes.inc({ topic }, bytes);
        });
        return finalOffsets;
      });
      (await sent.answers).forEach((outcome, position) => {
        offsets[batch[position].index] = toOffsetEntry(outcome);
      });

      let acknowledged = 0;
      let failed = 0;
      let status: ProduceResult['status'] = 200;
      for (const entry of offsets) {
        if (entry === undefined) continue;
        if ('offset' in entry) {
          acknowledged += 1;
          continue;
        }
        failed += 1;
        if (entry.error_code === 40402 && status === 200) status = 404;
        else if (entry.error_code !== 40402) status = 503;
      }
      if (acknowledged > 0) metrics.bridgeProducedRecords.inc({ topic, result: 'success' }, acknowledged);
      if (failed > 0) metrics.bridgeProducedRecords.inc({ topic, result: 'failed' }, failed);
      if (failed > 0)
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${failed} record(s) not acknowledged` });
      return { status, offsets, final };
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
      metrics.bridgeProduceDuration.observe({ topic }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /** Waits until every queued record has been sent (for drain). */
  async flush(): Promise<void> {
    await Promise.all([...this.senders.values()].map((sender) => sender.whenIdle()));
  }

  private async partitionsOf(topic: string): Promise<PartitionMetadata[]> {
    try {
      return await this.options.metadata.partitions(topic);
    } catch (err) {
      if (
        !(err instanceof MeshError) ||
        err.code !== 'MESH_TOPIC_NOT_FOUND' ||
        !this.options.autoCreateTopics
      )
        throw err;
      await this.options.metadata.createTopic(topic);
      this.options.metadata.invalidate(topic);
      return this.options.metadata.partitions(topic);
    }
  }

  private senderFor(topic: string, partitions: PartitionMetadata[]): TopicSender {
    let sender = this.senders.get(topic);
    if (!sender) {
      const { metadata } = this.options;
      sender = new TopicSender({
        producer: this.options.producer,
        topic,
        compression: COMPRESSION[this.options.compression],
        maxBatchRecords: this.options.maxBatchRecords,
        maxBatchBytes: this.options.maxBatchBytes,
        leaderOf: (partition) =>
          metadata.leaderOf(topic, partition) ??
          partitions.find((p) => p.partitionId === partition)?.leader ??
          -1,
        classifyError: (err) => this.classifySendError(topic, err),
        leadersChanged: () => metadata.invalidate(topic),
      });
      this.senders.set(topic, sender);
    }
    return sender;
  }

  private classifySendError(topic: string, err: unknown): MeshError {
    if (isUnknownTopicError(err)) {
      this.options.metadata.invalidate(topic);
      return new MeshError('MESH_PARTITION_NOT_FOUND', `a partition of topic ${topic} was not found`, {
        cause: err,
      });
    }
    return new MeshError('MESH_KAFKA_UNAVAILABLE', `not acknowledged by Kafka: ${(err as Error).message}`, {
      cause: err,
      headers: { 'retry-after': '1' },
    });
  }
}

function toOffsetEntry(outcome: RecordOutcome): OffsetEntry {
  if ('offset' in outcome) return { partition: outcome.partition, offset: outcome.offset };
  return outcome.error.toBridgeError();
}

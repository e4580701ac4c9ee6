/**
 * Trace context across Kafka: the record's `traceparent`/`tracestate` headers (written by the
 * bridge's PRODUCER span) become the parent of the CONSUMER span of the delivery, which is also
 * linked to them; the delivery request carries the CONSUMER span's context.
 */
import {
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  trace,
  type Attributes,
  type Link,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import type { IHeaders } from 'kafkajs';
import type { ConsumedRecord } from './cloudevents.js';

const headerGetter: TextMapGetter<IHeaders | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => {
    const value = carrier?.[key];
    const last = Array.isArray(value) ? value.at(-1) : value;
    if (last === undefined || last === null) return undefined;
    return typeof last === 'string' ? last : last.toString('utf8');
  },
};

export interface DeliverySpan {
  readonly span: Span;
  /** `traceparent` (and `tracestate`) of the span, for the delivery request's headers. */
  readonly headers: Record<string, string>;
}

function messagingAttributes(topic: string, group: string, subscription: string): Attributes {
  return {
    'messaging.system': 'kafka',
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': topic,
    'messaging.consumer.group.name': group,
    'mesh.subscription': subscription,
  };
}

/** The CONSUMER span of one record's delivery: child of, and linked to, the producer's context. */
export function startRecordSpan(
  tracer: Tracer,
  record: ConsumedRecord,
  names: { group: string; subscription: string },
): DeliverySpan {
  const parent = propagation.extract(ROOT_CONTEXT, record.message.headers, headerGetter);
  const producerContext = trace.getSpanContext(parent);
  const span = tracer.startSpan(
    `process ${record.topic}`,
    {
      kind: SpanKind.CONSUMER,
      links: producerContext ? [{ context: producerContext }] : [],
      attributes: {
        ...messagingAttributes(record.topic, names.group, names.subscription),
        'messaging.destination.partition.id': String(record.partition),
        'messaging.kafka.offset': Number(record.message.offset),
        'messaging.message.id': `${record.topic}-${record.partition}-${record.message.offset}`,
      },
    },
    parent,
  );
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), headers);
  return { span, headers };
}

/** The CONSUMER span of a batch: a new trace, linked to the context of every record in it. */
export function startBatchSpan(
  tracer: Tracer,
  records: readonly ConsumedRecord[],
  names: { group: string; subscription: string },
): DeliverySpan {
  const links: Link[] = [];
  for (const record of records) {
    // Most records of a batch carry no trace context: skip the propagator for them.
    if (record.message.headers?.['traceparent'] === undefined) continue;
    const context = trace.getSpanContext(
      propagation.extract(ROOT_CONTEXT, record.message.headers, headerGetter),
    );
    if (context) links.push({ context });
  }
  const first = records[0];
  const span = tracer.startSpan(`process ${first.topic}`, {
    kind: SpanKind.CONSUMER,
    root: true,
    links,
    attributes: {
      ...messagingAttributes(first.topic, names.group, names.subscription),
      'messaging.destination.partition.id': String(first.partition),
      'messaging.batch.message_count': records.length,
    },
  });
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), headers);
  return { span, headers };
}

const NO_TRACE: { traceparent?: string; tracestate?: string } = Object.freeze({});

/** The record's own trace context headers (for the event's distributed-tracing extension). */
export function recordTraceHeaders(record: ConsumedRecord): { traceparent?: string; tracestate?: string } {
  if (record.message.headers?.['traceparent'] === undefined) return NO_TRACE;
  const traceparent = headerGetter.get(record.message.headers, 'traceparent') as string | undefined;
  const tracestate = headerGetter.get(record.message.headers, 'tracestate') as string | undefined;
  return { ...(traceparent ? { traceparent } : {}), ...(tracestate ? { tracestate } : {}) };
}

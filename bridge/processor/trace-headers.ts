/**
 * One trace from input to outputs: every output record carries the trace context of the span that
 * processed its input (the CONSUMER span whose context the app request carried). An app that wrote
 * its own `traceparent` of the same trace (a child span of its own) keeps it; any other is replaced,
 * so an output never starts a trace of its own or continues a foreign one.
 */
import type { IHeaders } from 'kafkajs';
import type { OutputRecord } from './answer.js';

/** The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), or undefined. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const match =
    traceparent === undefined ? null : /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent);
  return match ? match[1] : undefined;
}

function headerString(headers: IHeaders, name: string): string | undefined {
  const value = headers[name];
  const last = Array.isArray(value) ? value.at(-1) : value;
  if (last === undefined || last === null) return undefined;
  return typeof last === 'string' ? last : last.toString('utf8');
}

/** The outputs with `traceparent`/`tracestate` of `trace` (the processing span's headers) added. */
export function withTraceContext(
  records: readonly OutputRecord[],
  trace: Readonly<Record<string, string>>,
): OutputRecord[] {
  const traceparent = trace['traceparent'];
  const traceId = traceIdOf(traceparent);
  if (traceparent === undefined || traceId === undefined) return [...records];
  return records.map(({ topic, message }) => {
    const headers: IHeaders = { ...(message.headers ?? {}) };
    if (traceIdOf(headerString(headers, 'traceparent')) !== traceId) {
      headers['traceparent'] = traceparent;
      const tracestate = trace['tracestate'];
      if (tracestate) headers['tracestate'] = tracestate;
      else delete headers['tracestate'];
    }
    return { topic, message: { ...message, headers } };
  });
}

/**
 * One trace id end to end (contract section 8): caller → ingress → app → bridge produce → Kafka
 * record headers → push delivery → app, through a whole in-process Sidecar.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind } from '@opentelemetry/api';
import { pino } from 'pino';
import { request } from 'undici';
import { validateConfig } from '../services/runtime/config.js';
import { createMetrics } from '../services/runtime/metrics.js';
import { startTelemetry } from '../services/runtime/telemetry.js';
import { Sidecar } from '../services/sidecar/sidecar.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { waitFor } from './helpers/wait.js';

describe('push subscriptions: one trace across Kafka', function () {
  this.timeout(60_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it('carries the caller trace id through ingress, the app, the bridge, Kafka and the push delivery', async () => {
    const topic = await suite.kafka.createTopic(uniqueName('push-trace'), 1);
    let bridgeUrl = '';
    const seen: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
    // The app: POST /orders produces through the bridge, continuing the traceparent it was given
    // (as an instrumented app would); POST /events receives the push delivery.
    const app: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        seen.push({ path: req.url ?? '', headers: req.headers, body });
        if (req.url !== '/orders') {
          res.writeHead(204).end();
          return;
        }
        void request(`${bridgeUrl}/topics/${topic}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/vnd.kafka.json.v2+json',
            traceparent: req.headers.traceparent!,
          },
          body: JSON.stringify({ records: [{ key: 'o-1', value: { order: 1 } }] }),
        }).then(
          async (answer) => {
            await answer.body.text();
            res.writeHead(answer.statusCode === 200 ? 202 : 500).end();
          },
          () => res.writeHead(500).end(),
        );
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    cleanup.defer(() => new Promise((resolve) => app.close(resolve)));
    const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;

    const telemetry = startTelemetry({ serviceName: 'push-trace', inMemory: true, env: {} });
    cleanup.defer(() => telemetry.shutdown());
    const config = validateConfig({
      admin: { enabled: false },
      ingress: { host: '127.0.0.1', port: 0, target: appUrl },
      egress: { enabled: false },
      kafka: { bootstrap: suite.kafka.brokers },
      bridge: { enabled: true, port: 0 },
      shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
      subscriptions: [
        {
          name: 'orders',
          topics: [topic],
          group: uniqueName('push-trace-group'),
          path: '/events',
          autoOffsetReset: 'earliest',
        },
      ],
    });
    const sidecar = new Sidecar({
      config,
      env: {},
      logger: pino({ level: 'silent' }),
      metrics: createMetrics(),
      telemetry,
    });
    await sidecar.start();
    cleanup.defer(() => sidecar.shutdown('test'));
    bridgeUrl = sidecar.urlOf('bridge')!;
    await waitFor(() => sidecar.readinessChecks().every((check) => check.ready), {
      timeoutMs: 20_000,
      what: `sidecar ready: ${JSON.stringify(sidecar.readinessChecks())}`,
    });

    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const answer = await request(`${sidecar.urlOf('ingress')}/orders`, {
      method: 'POST',
      headers: { traceparent: `00-${traceId}-1111111111111111-01`, 'content-type': 'application/json' },
      body: '{}',
    });
    await answer.body.text();
    assert.equal(answer.statusCode, 202);
    const delivery = await waitFor(() => seen.find((s) => s.path === '/events'), {
      what: 'the push delivery',
    });

    const traceOf = (headers: IncomingHttpHeaders) => (headers.traceparent as string).split('-')[1];
    assert.equal(traceOf(seen.find((s) => s.path === '/orders')!.headers), traceId, 'ingress → app');
    assert.equal(traceOf(delivery.headers), traceId, 'push delivery → app');
    const event = JSON.parse(delivery.body) as { data: unknown; traceparent: string };
    assert.deepEqual(event.data, { order: 1 });
    assert.equal(event.traceparent.split('-')[1], traceId, 'Kafka record header');

    // The CONSUMER span ends once the sidecar has read the app's answer, a moment after the app saw
    // the request.
    const spans = await waitFor(
      async () => {
        await telemetry.forceFlush();
        const finished = telemetry.memoryExporter!.getFinishedSpans();
        return finished.some((s) => s.kind === SpanKind.CONSUMER) && finished;
      },
      { what: 'the CONSUMER span finished' },
    );
    for (const kind of [SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER]) {
      const span = spans.find((s) => s.kind === kind);
      assert.ok(span, `a ${SpanKind[kind]} span`);
      assert.equal(span.spanContext().traceId, traceId, `${SpanKind[kind]} span in the trace`);
    }
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER)!;
    const consumer = spans.find((s) => s.kind === SpanKind.CONSUMER)!;
    assert.equal(
      consumer.parentSpanContext?.spanId,
      producer.spanContext().spanId,
      'CONSUMER is a child of PRODUCER',
    );
    assert.equal(consumer.links[0]?.context.spanId, producer.spanContext().spanId, 'and linked to it');
    // The delivery request carries the CONSUMER span.
    assert.equal((delivery.headers.traceparent as string).split('-')[2], consumer.spanContext().spanId);
  });
});

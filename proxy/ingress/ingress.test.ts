import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, SpanKind } from '@opentelemetry/api';
import { pino } from 'pino';
import { request } from 'undici';
import { startDemoBackend, type DemoBackend } from '../../services/demo-backend/server.js';
import { createMetrics } from '../../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.js';
import { IngressComponent } from './ingress.js';

describe('ingress forwarding', () => {
  let app: DemoBackend;
  let telemetry: Telemetry;
  let ingress: IngressComponent;

  async function startIngress(target: string, timeoutMs = 5_000) {
    ingress = new IngressComponent({
      host: '127.0.0.1',
      port: 0,
      target,
      timeoutMs,
      metrics: createMetrics(),
      logger: pino({ level: 'silent' }),
      tracer: telemetry.tracer,
    });
    await ingress.start();
  }

  beforeEach(async () => {
    app = await startDemoBackend();
    telemetry = startTelemetry({ serviceName: 'ingress-test', inMemory: true, env: {} });
  });
  afterEach(async () => {
    await ingress.stop();
    await app.close();
    await telemetry.shutdown();
  });

  it('forwards method, path, body and headers, adds forwarding headers and continues the trace', async () => {
    await startIngress(app.url);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    // node:http, not undici: undici refuses to send a custom Connection header.
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = http.request(`${ingress.url}/echo/orders?x=1`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
          'x-request-id': 'req-1',
          connection: 'keep-alive, x-hop',
          'x-hop': 'must not pass',
        },
      });
      req.once('response', resolve).once('error', reject);
      req.end(JSON.stringify({ id: 7 }));
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-request-id'], 'req-1');
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const echoed = JSON.parse(Buffer.concat(chunks).toString()) as {
      method: string;
      path: string;
      query: unknown;
      body: unknown;
      headers: Record<string, string>;
    };
    assert.equal(echoed.method, 'POST');
    assert.equal(echoed.path, '/echo/orders');
    assert.deepEqual(echoed.query, { x: '1' });
    assert.deepEqual(echoed.body, { id: 7 });
    assert.equal(echoed.headers['x-request-id'], 'req-1');
    assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
    assert.equal(echoed.headers['x-hop'], undefined);

    await telemetry.forceFlush();
    const spans = telemetry.memoryExporter!.getFinishedSpans();
    assert.equal(spans.length, 1);
    const [span] = spans;
    assert.equal(span.kind, SpanKind.SERVER);
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanContext?.spanId, '00f067aa0ba902b7');
    assert.equal(span.attributes['http.response.status_code'], 200);
    const forwardedParent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(echoed.headers.traceparent ?? '');
    assert.ok(forwardedParent, `traceparent sent to the app: ${echoed.headers.traceparent}`);
    assert.equal(forwardedParent[1], traceId);
    assert.equal(forwardedParent[2], span.spanContext().spanId);
  });

  it("makes the ingress span the parent of the app's request span", async () => {
    // An app instrumented like a real one: it continues the traceparent it receives.
    const received: string[] = [];
    const tracedApp = http.createServer((req, res) => {
      received.push(String(req.headers.traceparent));
      const parent = propagation.extract(context.active(), req.headers);
      const span = telemetry.tracer.startSpan('GET /hello (app)', { kind: SpanKind.SERVER }, parent);
      res.end('ok', () => span.end());
    });
    await new Promise<void>((resolve) => tracedApp.listen(0, '127.0.0.1', resolve));
    try {
      await startIngress(`http://127.0.0.1:${(tracedApp.address() as AddressInfo).port}`);
      const traceId = '0af7651916cd43dd8448eb211c80319c';
      const res = await request(`${ingress.url}/hello`, {
        headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
      });
      assert.equal(await res.body.text(), 'ok');
      await waitForSpans(2);
      const spans = telemetry.memoryExporter!.getFinishedSpans();
      const ingressSpan = spans.find((s) => s.name !== 'GET /hello (app)')!;
      const appSpan = spans.find((s) => s.name === 'GET /hello (app)')!;
      assert.equal(ingressSpan.spanContext().traceId, traceId);
      assert.equal(appSpan.spanContext().traceId, traceId);
      assert.equal(appSpan.parentSpanContext?.spanId, ingressSpan.spanContext().spanId);
      assert.equal(ingressSpan.parentSpanContext?.spanId, 'b7ad6b7169203331');
      assert.equal(received[0], `00-${traceId}-${ingressSpan.spanContext().spanId}-01`);
    } finally {
      await new Promise((resolve) => tracedApp.close(resolve));
    }
  });

  async function waitForSpans(count: number): Promise<void> {
    for (let i = 0; i < 100; i += 1) {
      await telemetry.forceFlush();
      if (telemetry.memoryExporter!.getFinishedSpans().length >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.fail(`fewer than ${count} spans finished`);
  }

  it('answers 502 problem+json when the app refuses connections', async () => {
    await app.close();
    await startIngress(app.url);
    assert.equal(ingress.readiness().ready, false);
    const res = await request(`${ingress.url}/hello`);
    assert.equal(res.statusCode, 502);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.equal(((await res.body.json()) as { code: string }).code, 'MESH_UPSTREAM_FAILED');
  });

  it('answers 504 with x-mesh-error: timeout when the app is slower than the timeout', async () => {
    await startIngress(app.url, 200);
    const res = await request(`${ingress.url}/slow?ms=5000`);
    assert.equal(res.statusCode, 504);
    assert.equal(res.headers['x-mesh-error'], 'timeout');
    assert.equal(((await res.body.json()) as { code: string }).code, 'MESH_TIMEOUT');
  });
});

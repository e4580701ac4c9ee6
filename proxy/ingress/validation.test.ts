import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { startDemoBackend, type DemoBackend } from '../../services/demo-backend/server.js';
import { validateConfig } from '../../services/runtime/config.js';
import type { ProblemDetails } from '../../services/runtime/errors.js';
import { createMetrics, type MeshMetrics } from '../../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.js';
import { IngressComponent } from './ingress.js';

const examples = fileURLToPath(new URL('../../examples/openapi/', import.meta.url));

interface Echo {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

describe('ingress OpenAPI request validation', () => {
  let app: DemoBackend;
  let telemetry: Telemetry;
  let ingress: IngressComponent | undefined;
  let metrics: MeshMetrics;

  async function startIngress(rules: Record<string, unknown>) {
    const config = validateConfig({ ingress: { target: app.url, ...rules } });
    metrics = createMetrics();
    const component = new IngressComponent({
      ...config.ingress,
      host: '127.0.0.1',
      port: 0,
      rules: config.ingress,
      baseDir: examples,
      metrics,
      logger: pino({ level: 'silent' }),
      tracer: telemetry.tracer,
    });
    ingress = component;
    await component.start();
  }

  async function call(path: string, init: Parameters<typeof request>[1] = {}) {
    const res = await request(`${ingress!.url}${path}`, {
      ...init,
      headers: { 'x-tenant': 'acme', ...(init.headers as Record<string, string>) },
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
  }

  async function problem(path: string, init: Parameters<typeof request>[1] = {}) {
    const res = await call(path, init);
    assert.equal(res.headers['content-type'], 'application/problem+json', res.text);
    return { status: res.status, headers: res.headers, body: res.json() as ProblemDetails };
  }

  beforeEach(async () => {
    app = await startDemoBackend();
    telemetry = startTelemetry({ serviceName: 'ingress-validation-test', inMemory: true, env: {} });
  });
  afterEach(async () => {
    await ingress?.stop();
    ingress = undefined;
    await app.close();
    await telemetry.shutdown();
  });

  it('passes a valid request to the app untouched and labels metrics with the path template', async () => {
    await startIngress({ openapi: 'petstore.yaml', openapiStrict: true });
    const res = await call(
      '/echo/v1/pets?limit=5&tags=ab&tags=cd&ids=1|2&filter[minAge]=3&filter[kind]=cat',
      {
        headers: { cookie: 'session=abcd; other=1' },
      },
    );
    assert.equal(res.status, 200, res.text);
    const echo = res.json() as Echo;
    assert.equal(echo.path, '/echo/v1/pets');
    assert.equal(echo.query.limit, '5');
    assert.equal(echo.headers['x-tenant'], 'acme');

    const created = await call('/echo/v1/pets', {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ name: 'Rex', tag: null, age: 2, owner: { email: 'a@b.example' } }),
    });
    assert.equal(created.status, 200, created.text);
    assert.deepEqual((created.json() as Echo).body, {
      name: 'Rex',
      tag: null,
      age: 2,
      owner: { email: 'a@b.example' },
    });

    const literal = await call('/echo/v1/pets/mine');
    assert.equal(literal.status, 200, literal.text);
    const photo = await call('/echo/v1/pets/7/photo.png');
    assert.equal(photo.status, 200, photo.text);

    const text = await metrics.registry.metrics();
    assert.match(
      text,
      /mesh_http_server_requests_total\{listener="ingress",method="GET",route="\/pets",status="200"\} 1/,
    );
    assert.match(text, /route="\/pets\/mine"/);
    assert.match(text, /route="\/pets\/\{petId\}\/photo.\{format\}"/);
    assert.doesNotMatch(text, /route="\/echo/);
  });

  it('answers 400 listing every parameter error with its location and JSON pointer', async () => {
    await startIngress({ openapi: 'petstore.yaml' });
    const res = await problem('/echo/v1/pets?limit=500&tags=a&ids=1|x&filter[kind]=cow', {
      headers: { 'x-tenant': 'ACME', cookie: 'session=ab' },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'MESH_BAD_REQUEST');
    const errors = res.body.errors!.map((e) => `${e.in} ${e.path}`).sort();
    assert.deepEqual(errors, [
      'cookie /session',
      'header /X-Tenant',
      'query /filter/kind',
      'query /ids/1',
      'query /limit',
      'query /tags/0',
    ]);
    assert.ok(res.body.errors!.every((e) => e.message.length > 0));

    const path = await problem('/echo/v1/pets/0');
    assert.deepEqual(path.body.errors, [{ in: 'path', path: '/petId', message: 'must be >= 1' }]);
    const missing = await problem('/echo/v1/pets', { headers: { 'x-tenant': '' } });
    assert.equal(missing.status, 400);
  });

  it('validates JSON bodies with $refs and OpenAPI 3.0 keywords', async () => {
    await startIngress({ openapi: 'petstore.yaml' });
    const res = await problem('/echo/v1/pets', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: '', age: 0, owner: { email: 'nope' }, colour: 'red' }),
    });
    assert.equal(res.status, 400);
    assert.deepEqual(res.body.errors!.map((e) => `${e.in} ${e.path}`).sort(), [
      'body /age',
      'body /colour',
      'body /name',
      'body /owner/email',
    ]);
    const broken = await problem('/echo/v1/pets', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": ',
    });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.errors![0].in, 'body');
    assert.match(broken.body.errors![0].message, /invalid JSON/);
    const empty = await problem('/echo/v1/pets', { method: 'POST' });
    assert.deepEqual(empty.body.errors, [{ in: 'body', path: '', message: 'request body is required' }]);
  });

  it('answers 415 for a content type the operation does not accept, and accepts media ranges', async () => {
    await startIngress({ openapi: 'petstore.yaml' });
    const res = await problem('/echo/v1/pets', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'name=Rex',
    });
    assert.equal(res.status, 415);
    assert.equal(res.body.code, 'MESH_UNSUPPORTED_MEDIA_TYPE');
    const image = await call('/echo/v1/pets/3/picture', {
      method: 'PUT',
      headers: { 'content-type': 'image/png' },
      body: Buffer.from([1, 2, 3]),
    });
    assert.equal(image.status, 200, image.text);
  });

  it('answers 413 for bodies over maxBodyBytes, declared or streamed', async () => {
    await startIngress({ openapi: 'petstore.yaml', maxBodyBytes: 64 });
    const declared = await problem('/echo/v1/pets', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(100) }),
    });
    assert.equal(declared.status, 413);
    assert.equal(declared.body.code, 'MESH_PAYLOAD_TOO_LARGE');
    const streamed = await problem('/echo/v1/pets/3/picture', {
      method: 'PUT',
      headers: { 'content-type': 'image/png' },
      // A stream has no Content-Length: it goes chunked, so only counting can catch it.
      body: Readable.from(Array.from({ length: 10 }, () => Buffer.alloc(16, 0x61))),
    });
    assert.equal(streamed.status, 413, JSON.stringify(streamed.body));
  });

  it('answers 404 and 405 (with Allow) only when strict', async () => {
    await startIngress({ openapi: 'petstore.yaml', openapiStrict: true });
    const notFound = await problem('/echo/v1/owners');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.body.code, 'MESH_NOT_FOUND');
    const outside = await problem('/hello');
    assert.equal(outside.status, 404);
    const wrongMethod = await problem('/echo/v1/pets/3', { method: 'PATCH' });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'GET, DELETE');
    const text = await metrics.registry.metrics();
    assert.match(
      text,
      /mesh_http_server_requests_total\{listener="ingress",method="GET",route="unmatched",status="404"\} 2/,
    );
    assert.match(
      text,
      /mesh_ingress_rejected_requests_total\{route="\/pets\/\{petId\}",reason="method_not_allowed"\} 1/,
    );
  });

  it('forwards unknown paths unvalidated when not strict', async () => {
    await startIngress({ openapi: 'petstore.yaml' });
    const res = await call('/hello');
    assert.equal(res.status, 200);
    const wrongMethod = await call('/echo/v1/pets/3', { method: 'PATCH' });
    assert.equal(wrongMethod.status, 200);
  });

  it('counts and logs responses that do not match the document, relaying them unchanged', async () => {
    await startIngress({ openapi: 'petstore.yaml', validateResponses: true });
    const good = await call('/echo/v1/pets/1');
    assert.equal(good.status, 200);
    const bad = await call('/echo/v1/pets/mine');
    assert.equal(bad.status, 200);
    assert.equal((bad.json() as Echo).path, '/echo/v1/pets/mine');
    const text = await waitForMetric(/mesh_ingress_response_validation_failures_total\{[^}]*\} \d+/);
    assert.match(
      text,
      /^mesh_ingress_response_validation_failures_total\{route="\/pets\/mine",method="GET",status="200"\} 1$/m,
    );
    assert.doesNotMatch(text, /mesh_ingress_response_validation_failures_total\{route="\/pets\/\{petId\}"/);
  });

  /** Response validation runs after the response is relayed: wait for the counter instead of racing it. */
  async function waitForMetric(pattern: RegExp): Promise<string> {
    for (let i = 0; i < 200; i += 1) {
      const text = await metrics.registry.metrics();
      if (pattern.test(text)) return text;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.fail(`metric ${pattern} never appeared`);
  }

  it('fails start-up with the pointer of a broken document', async () => {
    await assert.rejects(
      startIngress({ openapi: 'does-not-exist.yaml' }),
      /^Error: \/ingress\/openapi: cannot read/,
    );
  });
});

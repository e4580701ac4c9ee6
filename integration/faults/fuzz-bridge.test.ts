/**
 * Property-based fuzzing of the bridge's REST API from its own OpenAPI document
 * (schemas/bridge.openapi.yaml): every path and method, parameters and bodies generated from the
 * document's schemas, valid and mutated, against a real in-process bridge on the real broker.
 *
 * Properties: no 5xx except a 503 the operation documents; every 4xx carries the documented body
 * (`{error_code, message}` with a registry error_code whose first three digits are the status, or
 * the per-record offsets body where the document says so); no request hangs; the bridge still
 * answers afterwards.
 *
 * A fixed number of cases (FUZZ_RUNS, default 1000) with a printed seed; FUZZ_SEED=<n> replays a run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Pool } from 'undici';
import { parse } from 'yaml';
import { ERRORS, type ErrorSpec } from '../../services/runtime/errors.js';
import { startTestBridge } from '../helpers/bridge.js';
import { kafkaSuite, uniqueName } from '../helpers/kafka.js';

type Schema = Record<string, unknown>;
interface Operation {
  readonly method: string;
  readonly template: string;
  readonly operationId: string;
  readonly parameters: { name: string; in: string; schema: Schema; required?: boolean }[];
  readonly bodies: { contentType: string; schema: Schema }[];
  readonly responses: Record<string, Schema>;
}
interface FuzzRequest {
  readonly op: Operation;
  readonly path: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: string | Buffer | undefined;
  readonly note: string;
}

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1000);
const SEED = process.env['FUZZ_SEED']
  ? Number(process.env['FUZZ_SEED'])
  : Date.now() ^ (Math.random() * 2 ** 31);

const documentText = readFileSync(new URL('../../schemas/bridge.openapi.yaml', import.meta.url), 'utf8');
const document = parse(documentText) as Schema;

/** Follows `#/components/...` references (one level at a time, recursively). */
function resolve(node: unknown): Schema {
  let current = node as Schema;
  while (current && typeof current === 'object' && typeof current.$ref === 'string') {
    const parts = current.$ref.replace(/^#\//, '').split('/');
    current = parts.reduce<Schema>((at, part) => at[part] as Schema, document);
  }
  return current;
}

function operations(): Operation[] {
  const ops: Operation[] = [];
  for (const [template, item] of Object.entries(document.paths as Record<string, Schema>)) {
    const shared = ((item.parameters as unknown[]) ?? []).map(resolve);
    for (const method of ['get', 'post', 'put', 'delete']) {
      const op = item[method] as Schema | undefined;
      if (!op) continue;
      const own = ((op.parameters as unknown[]) ?? []).map(resolve);
      const content = (resolve(op.requestBody)?.content ?? {}) as Record<string, Schema>;
      ops.push({
        method: method.toUpperCase(),
        template,
        operationId: String(op.operationId),
        parameters: [...shared, ...own] as Operation['parameters'],
        bodies: Object.entries(content).map(([contentType, media]) => ({
          contentType,
          schema: resolve(media.schema),
        })),
        responses: Object.fromEntries(
          Object.entries((op.responses ?? {}) as Record<string, unknown>).map(([s, r]) => [s, resolve(r)]),
        ),
      });
    }
  }
  return ops;
}

/** A value valid against (a practical subset of) JSON Schema 2020-12, as the document uses it. */
function fromSchema(node: unknown, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(node);
  if (
    !schema ||
    Object.keys(schema).length === 0 ||
    (Object.keys(schema).length === 1 && schema.description)
  ) {
    return fc.jsonValue({ maxDepth: 2 });
  }
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  if (Array.isArray(schema.anyOf))
    return fc.oneof(...(schema.anyOf as unknown[]).map((s) => fromSchema(s, depth)));
  const type: unknown = Array.isArray(schema.type) ? (schema.type as unknown[])[0] : schema.type;
  switch (type) {
    case 'string':
      if (typeof schema.pattern === 'string') {
        return fc
          .stringMatching(new RegExp(schema.pattern))
          .filter((s) => s.length >= Number(schema.minLength ?? 0));
      }
      return fc.string({
        minLength: Number(schema.minLength ?? 0),
        maxLength: Number(schema.maxLength ?? 20),
      });
    case 'integer':
      return fc.integer({ min: Number(schema.minimum ?? -1000), max: 1000 });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(fromSchema(schema.items, depth + 1), {
        minLength: Number(schema.minItems ?? 0),
        maxLength: depth > 2 ? 1 : 4,
      });
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, unknown>;
      const required = (schema.required ?? []) as string[];
      const model = Object.fromEntries(
        Object.entries(properties).map(([name, s]) => [name, fromSchema(s, depth + 1)]),
      );
      return fc.record(model, { requiredKeys: required.filter((name) => name in model) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A valid body turned invalid in one of the ways clients get it wrong. */
function mutate(value: unknown): fc.Arbitrary<string | Buffer> {
  const text = JSON.stringify(value) ?? 'null';
  return fc.oneof(
    fc.constant(text.slice(0, Math.max(1, Math.floor(text.length / 2)))), // truncated JSON
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'), // another JSON value
    fc.string({ unit: 'binary', maxLength: 60 }), // any text
    fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes)), // any bytes (invalid UTF-8 too)
    fc.constant(
      Buffer.concat([
        Buffer.from('{"records":[{"value":"'),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}]}'),
      ]),
    ),
    fc
      .tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }))
      .map(([key, extra]) =>
        value && typeof value === 'object' && !Array.isArray(value)
          ? JSON.stringify({ ...value, [key]: extra })
          : JSON.stringify({ [key]: extra }),
      ), // an unknown property
    fc.constant(''),
  );
}

describe('bridge OpenAPI fuzz (real bridge, real broker)', function () {
  this.timeout(180_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it(`answers ${RUNS} generated requests without a 5xx, a hang or an undocumented error body`, async () => {
    console.log(`      fuzz seed: ${SEED} (replay with FUZZ_SEED=${SEED}), runs: ${RUNS}`);
    const topic = await suite.kafka.createTopic(uniqueName('fuzz'), 2);
    const group = uniqueName('fuzz-group');
    const { url } = await startTestBridge(cleanup, { bridge: { maxConsumers: 20 } });
    const pool = new Pool(url, { connections: 4, headersTimeout: 15_000, bodyTimeout: 15_000 });
    cleanup.defer(() => pool.close());

    // One known instance, so consumer operations reach past "instance not found"; its polls wait
    // at most 300 ms whatever timeout a generated request asks for.
    const created = await pool.request({
      path: `/consumers/${group}`,
      method: 'POST',
      headers: { 'content-type': 'application/vnd.kafka.v2+json' },
      body: JSON.stringify({ name: 'known', format: 'json', 'consumer.request.timeout.ms': 300 }),
    });
    assert.equal(created.statusCode, 200, await created.body.text());

    const ops = operations();
    assert.ok(ops.length >= 20, `operations found in the document: ${ops.length}`);
    const errorCodes = new Set(
      Object.values(ERRORS as Record<string, ErrorSpec>).map((spec) => spec.bridgeCode ?? spec.status * 100),
    );

    const pathValue = (name: string, schema: Schema): fc.Arbitrary<string> => {
      const hostile = fc.constantFrom(
        '..%2F..%2Fetc',
        '%2e%2e',
        'a%2Fb',
        '%00',
        '%ZZ',
        '%20',
        'x'.repeat(300),
        '%C0%AF',
      );
      const generated = fromSchema(schema).map((v) => encodeURIComponent(String(v)));
      const known: Record<string, fc.Arbitrary<string>> = {
        topicname: fc.constantFrom(topic, topic, uniqueName('nope'), 'bad%20name!', '%2e%2e', '.'),
        topic: fc.constantFrom(topic, uniqueName('nope'), '%2e%2e'),
        partitionid: fc.constantFrom('0', '1', '7', '-1', 'abc', '99999999999'),
        groupid: fc.constantFrom(group, group, 'other-group'),
        name: fc.constantFrom('known', 'known', 'unknown-instance'),
      };
      return fc.oneof(
        { weight: 6, arbitrary: known[name] ?? generated },
        { weight: 2, arbitrary: generated },
        { weight: 1, arbitrary: hostile },
      );
    };

    const queryValue = (param: { name: string; schema: Schema }): fc.Arbitrary<string> => {
      // Waits are bounded so that the run stays CI-sized; other values come from the schema.
      if (param.name === 'timeout') return fc.constantFrom('0', '50', '-5', 'soon', '200');
      return fc.oneof(
        fromSchema(param.schema).map((v) => String(v)),
        fc.string({ maxLength: 10 }),
      );
    };

    const requestFor = (op: Operation): fc.Arbitrary<FuzzRequest> => {
      const pathParams = op.parameters.filter((p) => p.in === 'path');
      const queryParams = op.parameters.filter((p) => p.in === 'query');
      const headerParams = op.parameters.filter((p) => p.in === 'header');
      const contentTypes = [...new Set(op.bodies.map((b) => b.contentType))];
      const body: fc.Arbitrary<{
        contentType: string | undefined;
        body: string | Buffer | undefined;
        note: string;
      }> =
        op.bodies.length === 0
          ? fc.oneof(
              fc.constant({ contentType: undefined, body: undefined, note: 'no body' }),
              fc.jsonValue({ maxDepth: 2 }).map((v) => ({
                contentType: 'application/json',
                body: JSON.stringify(v) ?? 'null',
                note: 'unexpected body',
              })),
            )
          : fc.constantFrom(...op.bodies).chain((media) =>
              fromSchema(media.schema).chain((valid) =>
                fc.oneof(
                  {
                    weight: 3,
                    arbitrary: fc.constant({
                      contentType: media.contentType,
                      body: JSON.stringify(valid),
                      note: 'valid body',
                    }),
                  },
                  {
                    weight: 3,
                    arbitrary: mutate(valid).map((b) => ({
                      contentType: media.contentType,
                      body: b,
                      note: 'mutated body',
                    })),
                  },
                  {
                    weight: 1,
                    arbitrary: fc
                      .constantFrom(
                        'text/plain',
                        'application/xml',
                        'application/vnd.kafka.avro.v2+json',
                        'multipart/form-data; boundary=x',
                        '',
                        ...contentTypes,
                      )
                      .map((contentType) => ({
                        contentType,
                        body: JSON.stringify(valid),
                        note: 'other content type',
                      })),
                  },
                ),
              ),
            );
      return fc
        .record({
          path: fc.tuple(...pathParams.map((p) => pathValue(p.name, p.schema))),
          query: fc.tuple(...queryParams.map((p) => fc.option(queryValue(p), { nil: undefined }))),
          headers: fc.tuple(
            ...headerParams.map((p) => fc.option(fromSchema(p.schema).map(String), { nil: undefined })),
          ),
          accept: fc.option(
            fc.constantFrom(
              'application/vnd.kafka.json.v2+json',
              'application/vnd.kafka.binary.v2+json',
              'application/vnd.kafka.v2+json',
              'text/html',
              '*/*',
            ),
            { nil: undefined },
          ),
          body,
        })
        .map(({ path, query, headers, accept, body: b }) => {
          let concrete = op.template;
          pathParams.forEach((p, i) => (concrete = concrete.replace(`{${p.name}}`, path[i])));
          const search = queryParams
            .map((p, i) => (query[i] === undefined ? undefined : `${p.name}=${encodeURIComponent(query[i])}`))
            .filter((q) => q !== undefined);
          const hdrs: Record<string, string> = {};
          headerParams.forEach((p, i) => {
            if (headers[i] !== undefined && headers[i] !== '') hdrs[p.name.toLowerCase()] = headers[i]!;
          });
          if (accept) hdrs['accept'] = accept;
          if (b.contentType) hdrs['content-type'] = b.contentType;
          return {
            op,
            method: op.method,
            path: `${concrete}${search.length > 0 ? `?${search.join('&')}` : ''}`,
            headers: hdrs,
            body: b.body,
            note: b.note,
          };
        });
    };

    // Mostly operations of the document; some requests to paths and methods it does not have.
    const unknownRequest: fc.Arbitrary<FuzzRequest> = fc
      .record({
        method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        path: fc.oneof(
          fc.webPath(),
          fc.constantFrom('/topics/%2e%2e/partitions', '/..%2f..%2fadmin', '/consumers', '//topics'),
        ),
      })
      .map(({ method, path }) => ({
        op: { method, template: path, operationId: 'none', parameters: [], bodies: [], responses: {} },
        method,
        path: path.startsWith('/') ? path : `/${path}`,
        headers: {},
        body: undefined,
        note: 'undocumented path',
      }));
    const anyRequest = fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...ops).chain(requestFor) },
      { weight: 1, arbitrary: unknownRequest },
    );

    const tally = {
      requests: 0,
      byStatus: new Map<number, number>(),
      undocumented: new Map<string, number>(),
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    cleanup.defer(() => process.off('unhandledRejection', onUnhandled));

    await fc.assert(
      fc.asyncProperty(anyRequest, async (req) => {
        const res = await pool.request({
          path: req.path,
          method: req.method,
          headers: req.headers,
          body: req.body,
        });
        const text = await res.body.text();
        const status = res.statusCode;
        tally.requests += 1;
        tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
        const documented = req.op.responses[String(status)];
        if (!documented && req.op.operationId !== 'none') {
          const key = `${req.op.operationId} ${status}`;
          tally.undocumented.set(key, (tally.undocumented.get(key) ?? 0) + 1);
        }
        const where = `${req.method} ${req.path} (${req.note}) → ${status} ${text.slice(0, 300)}`;
        if (status >= 500) {
          assert.ok(status === 503 && documented, `unexpected ${status}: ${where}`);
        }
        if (status >= 400) {
          const content = String(documented?.content ? Object.keys(documented.content)[0] : '');
          const schema = documented?.content
            ? resolve(((documented.content as Record<string, Schema>)[content] ?? {}).schema)
            : undefined;
          const body = JSON.parse(text) as Record<string, unknown>;
          const offsetsDocumented = Boolean(schema?.properties && 'offsets' in (schema.properties as Schema));
          if (offsetsDocumented && 'offsets' in body) {
            // Per-record answer (an unknown partition, records not acknowledged): one entry per record.
            assert.ok(Array.isArray(body.offsets), `offsets body expected: ${where}`);
          } else {
            assert.match(String(res.headers['content-type']), /^application\/vnd\.kafka\.v2\+json/, where);
            assert.equal(typeof body.message, 'string', where);
            assert.ok(Number.isInteger(body.error_code), where);
            assert.equal(
              Math.floor(Number(body.error_code) / 100),
              status,
              `error_code matches status: ${where}`,
            );
            assert.ok(errorCodes.has(Number(body.error_code)), `error_code from the registry: ${where}`);
          }
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );

    // Still up, still producing.
    const after = await pool.request({
      path: `/topics/${topic}`,
      method: 'POST',
      headers: { 'content-type': 'application/vnd.kafka.json.v2+json' },
      body: JSON.stringify({ records: [{ value: { after: 'fuzz' } }] }),
    });
    assert.equal(after.statusCode, 200, await after.body.text());
    assert.deepEqual(unhandled, [], 'no unhandled rejection during the run');
    const statuses = [...tally.byStatus].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`);
    console.log(`      fuzz: ${tally.requests} requests, statuses ${statuses.join(' ')}`);
    if (tally.undocumented.size > 0) {
      console.log(
        `      statuses the document does not list: ${[...tally.undocumented].map(([k, n]) => `${k}×${n}`).join(', ')}`,
      );
    }
  });
});

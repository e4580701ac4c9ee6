import assert from 'node:assert/strict';
import { compileOpenApi, toFieldErrors, type CompiledOperation, type RequestParts } from './compile.js';
import { prepareOpenApi } from './document.js';
import { pathValue, queryValue, type ParameterSpec } from './params.js';
import { PathRouter } from './router.js';

function spec(partial: Partial<ParameterSpec>): ParameterSpec {
  return {
    name: 'id',
    in: 'path',
    required: true,
    style: 'simple',
    explode: false,
    shape: { kind: 'primitive', type: 'integer' },
    json: false,
    ...partial,
  };
}

describe('OpenAPI path router', () => {
  it('prefers literal segments over templates and captures raw parameters', () => {
    const router = new PathRouter<string>();
    router.add('/pets/{id}', 'byId');
    router.add('/pets/mine', 'mine');
    router.add('/pets/{id}/files/{name}.{ext}', 'file');
    router.add('/', 'root');
    assert.equal(router.match('/pets/mine')?.value, 'mine');
    assert.deepEqual(router.match('/pets/a%20b')?.params, { id: 'a%20b' });
    assert.deepEqual(router.match('/pets/7/files/report.final.pdf')?.params, {
      id: '7',
      name: 'report.final',
      ext: 'pdf',
    });
    assert.equal(router.match('/')?.value, 'root');
    assert.equal(router.match('/pets/'), undefined, 'an empty segment is no parameter');
    assert.equal(router.match('/pets/1/2'), undefined);
  });
});

describe('OpenAPI parameter styles', () => {
  const array = { kind: 'array', items: 'integer' } as const;
  const object = {
    kind: 'object',
    properties: new Map([
      ['r', 'integer'],
      ['g', 'string'],
    ]),
  } as const;

  it('reads path parameters in simple, label and matrix style', () => {
    assert.equal(pathValue(spec({}), '5'), 5);
    assert.equal(pathValue(spec({}), 'x'), 'x', 'unparseable values stay strings for the validator');
    assert.deepEqual(pathValue(spec({ shape: array }), '3,4,5'), [3, 4, 5]);
    assert.deepEqual(pathValue(spec({ shape: object }), 'r,100,g,x'), { r: 100, g: 'x' });
    assert.deepEqual(pathValue(spec({ shape: object, explode: true }), 'r=100,g=x'), { r: 100, g: 'x' });
    assert.deepEqual(pathValue(spec({ style: 'label', shape: array }), '.3,4'), [3, 4]);
    assert.deepEqual(pathValue(spec({ style: 'label', shape: array, explode: true }), '.3.4'), [3, 4]);
    assert.equal(pathValue(spec({ style: 'matrix' }), ';id=5'), 5);
    assert.deepEqual(pathValue(spec({ style: 'matrix', shape: array }), ';id=3,4'), [3, 4]);
    assert.deepEqual(pathValue(spec({ style: 'matrix', shape: array, explode: true }), ';id=3;id=4'), [3, 4]);
    assert.equal(pathValue(spec({ shape: { kind: 'primitive', type: 'string' } }), 'a%2Fb'), 'a/b');
    assert.throws(() => pathValue(spec({}), '%E0%A4%A'), URIError);
  });

  it('reads query parameters in form, spaceDelimited, pipeDelimited and deepObject style', () => {
    const q = (text: string) => new URLSearchParams(text);
    const form = spec({ in: 'query', style: 'form', explode: true, shape: array });
    assert.deepEqual(queryValue(form, q('id=1&id=2')), [1, 2]);
    assert.deepEqual(queryValue({ ...form, explode: false }, q('id=1,2')), [1, 2]);
    assert.deepEqual(queryValue({ ...form, style: 'spaceDelimited', explode: false }, q('id=1%202')), [1, 2]);
    assert.deepEqual(queryValue({ ...form, style: 'pipeDelimited', explode: false }, q('id=1|2')), [1, 2]);
    assert.deepEqual(
      queryValue(spec({ in: 'query', style: 'form', explode: true, shape: object }), q('r=1&g=x&z=2')),
      {
        r: 1,
        g: 'x',
      },
    );
    assert.deepEqual(
      queryValue(spec({ in: 'query', style: 'deepObject', explode: true, shape: object }), q('id[r]=1')),
      {
        r: 1,
      },
    );
    assert.equal(queryValue(form, q('other=1')), undefined);
    assert.equal(
      queryValue(
        spec({ in: 'query', json: true, shape: { kind: 'primitive', type: undefined } }),
        q('id={"a":1}'),
      )?.constructor,
      Object,
    );
  });
});

describe('OpenAPI 3.1 documents', () => {
  const api = compileOpenApi(
    prepareOpenApi({
      openapi: '3.1.0',
      servers: [{ url: 'https://api.example.com/{base}', variables: { base: { default: 'v2' } } }],
      paths: {
        '/items/{id}': {
          put: {
            parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
            security: [{ oauth: ['items:write'] }, { oauth: ['admin'] }],
            requestBody: {
              content: {
                'application/merge-patch+json': {
                  schema: { type: 'object', properties: { note: { type: ['string', 'null'] } } },
                },
              },
            },
          },
        },
        '/open': { get: { security: [{}] } },
      },
      components: { securitySchemes: { oauth: { type: 'oauth2', flows: {} } } },
    }),
    { responses: false },
  );
  const operation = (path: string, method: string): CompiledOperation =>
    api.router.match(path)!.value.get(method)!;

  it('takes the base path from servers with variables, and security alternatives per operation', () => {
    assert.deepEqual(api.document.basePaths, ['/v2']);
    assert.deepEqual(operation('/items/1', 'PUT').security, {
      kind: 'required',
      alternatives: [['items:write'], ['admin']],
    });
    assert.deepEqual(operation('/open', 'GET').security, { kind: 'optional' });
  });

  it('validates 3.1 type arrays and +json media types with one validator', () => {
    const put = operation('/items/1', 'PUT');
    const parts = (body: unknown): RequestParts => ({
      path: { id: 1 },
      query: {},
      header: {},
      cookie: {},
      mediaType: 'application/merge-patch+json',
      body,
    });
    assert.equal(put.validate(parts({ note: null })), true);
    assert.equal(put.validate(parts({ note: 5 })), false);
    assert.deepEqual(toFieldErrors(put.validate.errors), [
      { in: 'body', path: '/note', message: 'must be string,null' },
    ]);
  });

  it('refuses documents it cannot serve', () => {
    assert.throws(() => prepareOpenApi({ openapi: '2.0', paths: {} }), /not supported/);
    assert.throws(() => prepareOpenApi({ swagger: '2.0' }), /not an OpenAPI document/);
    assert.throws(
      () =>
        compileOpenApi(
          prepareOpenApi({
            openapi: '3.0.0',
            paths: { '/x': { get: { parameters: [{ $ref: '#/components/parameters/Nope' }] } } },
          }),
          { responses: false },
        ),
      /GET \/x: cannot resolve "#\/components\/parameters\/Nope"/,
    );
  });
});

import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import type { FieldError } from '../../../services/runtime/errors.js';
import {
  deref,
  escapePointerToken,
  isObject,
  OpenApiError,
  pointer,
  resolvePointer,
  type Json,
  type OpenApiDocument,
} from './document.js';
import { DEFAULT_STYLE, type ParameterLocation, type ParameterShape, type ParameterSpec } from './params.js';
import { PathRouter } from './router.js';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const DOC_ID = 'urn:mesh-sidecar:openapi';
const LOCATIONS: readonly ParameterLocation[] = ['path', 'query', 'header', 'cookie'];
/** Header parameters the OpenAPI spec says to ignore: they are described elsewhere. */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

/** Who may call an operation, as far as a bearer token can tell. */
export type SecurityNeed =
  | { readonly kind: 'none' }
  | { readonly kind: 'optional' }
  /** A token is needed; it must carry every scope of at least one alternative. */
  | { readonly kind: 'required'; readonly alternatives: readonly (readonly string[])[] };

export interface BodySpec {
  readonly required: boolean;
  /** Media ranges of `content`, as written (`application/json`, `image/*`), lower case. */
  readonly media: readonly { readonly range: string; readonly json: boolean }[];
}

/** What is validated in one call: the parsed request, grouped by location. */
export interface RequestParts {
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  header: Record<string, unknown>;
  cookie: Record<string, unknown>;
  mediaType?: string;
  body?: unknown;
}

export interface CompiledOperation {
  readonly method: string;
  readonly template: string;
  readonly operationId: string | undefined;
  readonly parameters: readonly ParameterSpec[];
  readonly body: BodySpec | undefined;
  readonly security: SecurityNeed;
  /** The one validator of this operation: parameters and body together, built at start-up. */
  readonly validate: ValidateFunction;
  /** Response validators by status key (`200`, `2XX`, `default`), when response validation is on. */
  readonly responses: ReadonlyMap<string, ValidateFunction> | undefined;
}

export interface CompiledApi {
  readonly document: OpenApiDocument;
  readonly router: PathRouter<ReadonlyMap<string, CompiledOperation>>;
  readonly operationCount: number;
}

export function isJsonMediaType(range: string): boolean {
  return range === 'application/json' || /^application\/[^;]*\+json$/.test(range);
}

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  (addFormatsModule as unknown as FormatsPlugin)(ajv);
  const int = (bits: number) => (value: number) =>
    Number.isInteger(value) && value >= -(2 ** (bits - 1)) && value < 2 ** (bits - 1);
  ajv.addFormat('int32', { type: 'number', validate: int(32) });
  ajv.addFormat('int64', { type: 'number', validate: (value: number) => Number.isInteger(value) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  for (const name of ['byte', 'binary', 'password']) ajv.addFormat(name, true);
  return ajv;
}

/** `{$ref}` to a location of the registered document, so its own `$ref`s resolve as written. */
function refTo(at: string): Json {
  const fragment = at
    .split('/')
    .slice(1)
    .map((token) => `/${encodeURIComponent(token)}`)
    .join('');
  return { $ref: `${DOC_ID}#${fragment}` };
}

/** The schema at a location, with `$ref`s followed, to read its `type` for deserialization. */
function schemaAt(root: Json, node: unknown): Json {
  let current = node;
  for (let depth = 0; depth < 32 && isObject(current) && typeof current.$ref === 'string'; depth += 1) {
    current = resolvePointer(root, current.$ref);
  }
  return isObject(current) ? current : {};
}

function primaryType(root: Json, schema: unknown): string | undefined {
  const resolved = schemaAt(root, schema);
  const type = resolved.type;
  if (typeof type === 'string') return type;
  if (Array.isArray(type)) return type.find((t): t is string => typeof t === 'string' && t !== 'null');
  return undefined;
}

function shapeOf(root: Json, schema: unknown): ParameterShape {
  const resolved = schemaAt(root, schema);
  const type = primaryType(root, resolved);
  if (type === 'array') return { kind: 'array', items: primaryType(root, resolved.items) };
  if (type === 'object') {
    const properties = new Map<string, string | undefined>();
    if (isObject(resolved.properties)) {
      for (const [name, property] of Object.entries(resolved.properties)) {
        properties.set(name, primaryType(root, property));
      }
    }
    return { kind: 'object', properties };
  }
  return { kind: 'primitive', type };
}

function parameterSpecs(
  root: Json,
  pathItem: Json,
  pathAt: string,
  operation: Json,
  operationAt: string,
): { spec: ParameterSpec; schemaAt: string }[] {
  const byKey = new Map<string, { spec: ParameterSpec; schemaAt: string }>();
  const sources: [unknown, string][] = [
    [pathItem.parameters, `${pathAt}/parameters`],
    [operation.parameters, `${operationAt}/parameters`],
  ];
  for (const [list, listAt] of sources) {
    if (!Array.isArray(list)) continue;
    list.forEach((raw, index) => {
      const { node, at } = deref(root, raw, `${listAt}/${index}`);
      const where = node.in;
      if (typeof node.name !== 'string' || !LOCATIONS.includes(where as ParameterLocation)) {
        throw new OpenApiError(`${at}: a parameter needs "name" and "in" (path, query, header or cookie)`);
      }
      const location = where as ParameterLocation;
      if (location === 'header' && IGNORED_HEADERS.has(node.name.toLowerCase())) return;
      let schemaPointer: string;
      let json = false;
      if (node.schema !== undefined) schemaPointer = `${at}/schema`;
      else if (isObject(node.content) && Object.keys(node.content).length > 0) {
        const mediaType = Object.keys(node.content)[0];
        schemaPointer = `${at}/content/${escapePointerToken(mediaType)}/schema`;
        json = isJsonMediaType(mediaType.toLowerCase());
      } else {
        schemaPointer = '';
      }
      const style = typeof node.style === 'string' ? node.style : DEFAULT_STYLE[location];
      const schema = schemaPointer ? resolvePointer(root, `#${schemaPointer}`) : {};
      const spec: ParameterSpec = {
        name: node.name,
        in: location,
        required: location === 'path' || node.required === true,
        style,
        explode: typeof node.explode === 'boolean' ? node.explode : style === 'form',
        shape: shapeOf(root, schema),
        json,
      };
      // Operation-level parameters override path-level ones with the same name and location.
      byKey.set(`${location}:${location === 'header' ? node.name.toLowerCase() : node.name}`, {
        spec,
        schemaAt: schemaPointer,
      });
    });
  }
  return [...byKey.values()];
}

function bodySpec(
  root: Json,
  operation: Json,
  operationAt: string,
): { body: BodySpec; schemas: Json[] } | undefined {
  if (operation.requestBody === undefined) return undefined;
  const { node, at } = deref(root, operation.requestBody, `${operationAt}/requestBody`);
  const content = isObject(node.content) ? node.content : {};
  const media: { range: string; json: boolean }[] = [];
  const schemas: Json[] = [];
  for (const [range, mediaObject] of Object.entries(content)) {
    const lower = range.toLowerCase().split(';')[0].trim();
    const json = isJsonMediaType(lower);
    media.push({ range: lower, json });
    if (json && isObject(mediaObject) && mediaObject.schema !== undefined) {
      schemas.push({
        if: { properties: { mediaType: { const: lower } }, required: ['mediaType'] },
        then: { properties: { body: refTo(`${at}/content/${escapePointerToken(range)}/schema`) } },
      });
    }
  }
  return { body: { required: node.required === true, media }, schemas };
}

function isBearerScheme(scheme: unknown): boolean {
  if (!isObject(scheme)) return false;
  if (scheme.type === 'oauth2' || scheme.type === 'openIdConnect') return true;
  return (
    scheme.type === 'http' && typeof scheme.scheme === 'string' && scheme.scheme.toLowerCase() === 'bearer'
  );
}

function securityNeed(root: Json, operation: Json): SecurityNeed {
  const requirements = operation.security ?? root.security;
  if (requirements === undefined) return { kind: 'required', alternatives: [[]] };
  if (!Array.isArray(requirements) || requirements.length === 0) return { kind: 'none' };
  const schemes =
    isObject(root.components) && isObject(root.components.securitySchemes)
      ? root.components.securitySchemes
      : {};
  const alternatives: string[][] = [];
  for (const requirement of requirements) {
    if (!isObject(requirement)) continue;
    const bearer = Object.entries(requirement).filter(([name]) => isBearerScheme(schemes[name]));
    // `{}` (anonymous) or only schemes a bearer token cannot satisfy (API keys): the app decides.
    if (bearer.length === 0) return { kind: 'optional' };
    alternatives.push(
      bearer.flatMap(([, scopes]) =>
        Array.isArray(scopes) ? scopes.filter((s) => typeof s === 'string') : [],
      ),
    );
  }
  return { kind: 'required', alternatives };
}

function compileResponses(ajv: Ajv2020, root: Json, operation: Json, operationAt: string) {
  const validators = new Map<string, ValidateFunction>();
  if (!isObject(operation.responses)) return validators;
  for (const [status, raw] of Object.entries(operation.responses)) {
    const { node, at } = deref(root, raw, `${operationAt}/responses/${escapePointerToken(status)}`);
    if (!isObject(node.content)) continue;
    const json = Object.entries(node.content).find(
      ([range, media]) =>
        isJsonMediaType(range.toLowerCase().split(';')[0].trim()) && isObject(media) && media.schema,
    );
    if (!json) continue;
    validators.set(
      status.toUpperCase(),
      ajv.compile(refTo(`${at}/content/${escapePointerToken(json[0])}/schema`)),
    );
  }
  return validators;
}

/** Compiles every operation of the document once: the router and one validator per operation. */
export function compileOpenApi(document: OpenApiDocument, options: { responses: boolean }): CompiledApi {
  const { root } = document;
  const ajv = newAjv();
  ajv.addSchema(root, DOC_ID, undefined, false);
  const router = new PathRouter<ReadonlyMap<string, CompiledOperation>>();
  let operationCount = 0;
  for (const [template, rawItem] of Object.entries(root.paths as Json)) {
    if (!template.startsWith('/')) throw new OpenApiError(`path "${template}" must start with "/"`);
    const pathAt = pointer(['paths', template]);
    const { node: pathItem, at: itemAt } = deref(root, rawItem, pathAt);
    const operations = new Map<string, CompiledOperation>();
    for (const method of METHODS) {
      const operation = pathItem[method];
      if (!isObject(operation)) continue;
      const operationAt = `${itemAt}/${method}`;
      try {
        const parameters = parameterSpecs(root, pathItem, itemAt, operation, operationAt);
        const body = bodySpec(root, operation, operationAt);
        const locations: Record<string, Json> = {};
        for (const location of LOCATIONS) {
          const own = parameters.filter((p) => p.spec.in === location);
          locations[location] = {
            type: 'object',
            properties: Object.fromEntries(
              own.filter((p) => p.schemaAt).map((p) => [p.spec.name, refTo(p.schemaAt)]),
            ),
            required: own.filter((p) => p.spec.required).map((p) => p.spec.name),
          };
        }
        const schema: Json = { type: 'object', properties: locations };
        if (body && body.schemas.length > 0) schema.allOf = body.schemas;
        operations.set(method.toUpperCase(), {
          method: method.toUpperCase(),
          template,
          operationId: typeof operation.operationId === 'string' ? operation.operationId : undefined,
          parameters: parameters.map((p) => p.spec),
          body: body?.body,
          security: securityNeed(root, operation),
          validate: ajv.compile(schema),
          responses: options.responses ? compileResponses(ajv, root, operation, operationAt) : undefined,
        });
        operationCount += 1;
      } catch (err) {
        throw new OpenApiError(`${method.toUpperCase()} ${template}: ${(err as Error).message}`);
      }
    }
    if (operations.size > 0) router.add(template, operations);
  }
  return { document, router, operationCount };
}

const LOCATION_NAMES = new Set<string>(['path', 'query', 'header', 'cookie', 'body']);

/** Ajv errors of a request validator as `{in, path, message}` entries (JSON pointers inside each location). */
export function toFieldErrors(errors: readonly ErrorObject[] | null | undefined): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const error of errors ?? []) {
    if (error.keyword === 'if') continue;
    const tokens = error.instancePath.split('/').slice(1);
    let where = tokens.shift();
    if (error.keyword === 'required' && where === undefined) continue;
    const extra =
      error.keyword === 'required'
        ? (error.params as { missingProperty: string }).missingProperty
        : error.keyword === 'additionalProperties'
          ? (error.params as { additionalProperty: string }).additionalProperty
          : undefined;
    if (where === undefined && extra !== undefined) where = extra;
    if (where === undefined || !LOCATION_NAMES.has(where)) continue;
    if (extra !== undefined) tokens.push(escapePointerToken(extra));
    const message =
      error.keyword === 'required'
        ? 'is required'
        : error.keyword === 'additionalProperties'
          ? 'is not allowed'
          : (error.message ?? 'is invalid');
    const entry = {
      in: where as FieldError['in'],
      path: tokens.length ? `/${tokens.join('/')}` : '',
      message,
    };
    const key = `${entry.in}|${entry.path}|${entry.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(entry);
    }
  }
  return out;
}

/** Response validator for a status: exact code, then `2XX`, then `default`. */
export function responseValidator(
  operation: CompiledOperation,
  status: number,
): ValidateFunction | undefined {
  const validators = operation.responses;
  if (!validators) return undefined;
  return (
    validators.get(String(status)) ?? validators.get(`${String(status)[0]}XX`) ?? validators.get('DEFAULT')
  );
}

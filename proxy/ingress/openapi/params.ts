/**
 * Turns the strings of a request (path segments, query string, headers, cookies) into the typed
 * values an OpenAPI parameter describes, following its `style` and `explode` (OpenAPI 3 §4.8.12.4).
 * Values that do not parse stay strings, so the validator reports them ("must be integer").
 */
export type ParameterLocation = 'path' | 'query' | 'header' | 'cookie';

export type ParameterShape =
  | { readonly kind: 'primitive'; readonly type: string | undefined }
  | { readonly kind: 'array'; readonly items: string | undefined }
  | { readonly kind: 'object'; readonly properties: ReadonlyMap<string, string | undefined> };

export interface ParameterSpec {
  readonly name: string;
  readonly in: ParameterLocation;
  readonly required: boolean;
  readonly style: string;
  readonly explode: boolean;
  readonly shape: ParameterShape;
  /** `content: {application/json: ...}` instead of `schema`: the value is a JSON text. */
  readonly json: boolean;
}

export const DEFAULT_STYLE: Record<ParameterLocation, string> = {
  path: 'simple',
  query: 'form',
  header: 'simple',
  cookie: 'form',
};

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

function coerce(value: string, type: string | undefined): unknown {
  switch (type) {
    case 'integer':
    case 'number':
      return NUMBER.test(value) ? Number(value) : value;
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
    case 'null':
      return value === '' ? null : value;
    default:
      return value;
  }
}

function coerceArray(values: readonly string[], items: string | undefined): unknown[] {
  return values.map((value) => coerce(value, items));
}

function pairsToObject(
  parts: readonly string[],
  properties: ReadonlyMap<string, string | undefined>,
): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) {
    object[parts[i]] = coerce(parts[i + 1], properties.get(parts[i]));
  }
  return object;
}

function exploded(parts: readonly string[], properties: ReadonlyMap<string, string | undefined>) {
  const object: Record<string, unknown> = {};
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq);
    object[key] = coerce(part.slice(eq + 1), properties.get(key));
  }
  return object;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Decodes one percent-encoded piece of a path; throws URIError on a malformed escape. */
const decode = (text: string) => decodeURIComponent(text);

/** A path parameter from its raw (percent-encoded) segment text. */
export function pathValue(spec: ParameterSpec, raw: string): unknown {
  if (spec.json) return parseJson(decode(raw));
  let text = raw;
  let separator = ',';
  if (spec.style === 'label') {
    if (text.startsWith('.')) text = text.slice(1);
    if (spec.explode) separator = '.';
  } else if (spec.style === 'matrix') {
    const prefix = `;${spec.name}=`;
    if (spec.shape.kind === 'array' && spec.explode) {
      return coerceArray(
        text
          .split(';')
          .filter(Boolean)
          .map((part) => decode(part.slice(part.indexOf('=') + 1))),
        spec.shape.items,
      );
    }
    if (spec.shape.kind === 'object' && spec.explode) {
      return exploded(text.split(';').filter(Boolean).map(decode), spec.shape.properties);
    }
    if (text.startsWith(prefix)) text = text.slice(prefix.length);
  }
  return split(spec, text, separator, true);
}

/** Splits a delimited value into an array or object (or keeps a primitive), decoding each piece. */
function split(spec: ParameterSpec, text: string, separator: string, percentEncoded: boolean): unknown {
  const clean = (piece: string) => (percentEncoded ? decode(piece) : piece);
  const { shape } = spec;
  if (shape.kind === 'primitive') return coerce(clean(text), shape.type);
  const parts = text === '' ? [] : text.split(separator).map(clean);
  if (shape.kind === 'array') return coerceArray(parts, shape.items);
  return spec.explode ? exploded(parts, shape.properties) : pairsToObject(parts, shape.properties);
}

/** A query parameter, or undefined when absent. `query` is the parsed query string. */
export function queryValue(spec: ParameterSpec, query: URLSearchParams): unknown {
  const { shape, name } = spec;
  if (spec.style === 'deepObject') {
    if (shape.kind !== 'object') return query.get(name) ?? undefined;
    const object: Record<string, unknown> = {};
    let found = false;
    for (const [key, value] of query) {
      if (key.startsWith(`${name}[`) && key.endsWith(']')) {
        const property = key.slice(name.length + 1, -1);
        object[property] = coerce(value, shape.properties.get(property));
        found = true;
      }
    }
    return found ? object : undefined;
  }
  if (shape.kind === 'object' && spec.explode && spec.style === 'form') {
    const object: Record<string, unknown> = {};
    let found = false;
    for (const [property, type] of shape.properties) {
      const value = query.get(property);
      if (value !== null) {
        object[property] = coerce(value, type);
        found = true;
      }
    }
    return found ? object : undefined;
  }
  const values = query.getAll(name);
  if (values.length === 0) return undefined;
  if (spec.json) return parseJson(values[0]);
  if (shape.kind === 'array') {
    if (spec.explode && spec.style === 'form') return coerceArray(values, shape.items);
    const separator = spec.style === 'spaceDelimited' ? ' ' : spec.style === 'pipeDelimited' ? '|' : ',';
    return values.flatMap((value) => (value === '' ? [] : coerceArray(value.split(separator), shape.items)));
  }
  return split(spec, values[0], ',', false);
}

/** A header parameter (style simple), or undefined when absent. */
export function headerValue(spec: ParameterSpec, value: string | string[] | undefined): unknown {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(', ') : value;
  if (spec.json) return parseJson(text);
  if (spec.shape.kind === 'primitive') return coerce(text, spec.shape.type);
  return split(
    spec,
    text
      .split(',')
      .map((part) => part.trim())
      .join(','),
    ',',
    false,
  );
}

/** Parses a `Cookie` header into name → value (first one wins, as browsers send the most specific first). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
  }
  return cookies;
}

/** A cookie parameter (style form), or undefined when absent. */
export function cookieValue(spec: ParameterSpec, cookies: Map<string, string>): unknown {
  const raw = cookies.get(spec.name);
  if (raw === undefined) return undefined;
  let text: string;
  try {
    text = decodeURIComponent(raw);
  } catch {
    text = raw;
  }
  if (spec.json) return parseJson(text);
  return split(spec, text, ',', false);
}

import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';

/** A JSON value of the OpenAPI document, read defensively: documents are user input. */
export type Json = { [key: string]: unknown };

export interface OpenApiDocument {
  /** `3.0` or `3.1`: 3.0 schemas are rewritten to JSON Schema 2020-12 on load (see `normalize30`). */
  readonly version: '3.0' | '3.1';
  /** The normalized document; schema pointers below point into it. */
  readonly root: Json;
  /** Path prefixes from `servers` (`/v1`), longest first; `''` when the API sits at the root. */
  readonly basePaths: readonly string[];
}

export class OpenApiError extends Error {
  override readonly name = 'OpenApiError';
}

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a YAML or JSON OpenAPI 3.0/3.1 document and prepares it for compilation. */
export async function loadOpenApi(file: string): Promise<OpenApiDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new OpenApiError(`cannot read OpenAPI document ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new OpenApiError(`invalid YAML/JSON in ${file}: ${(err as Error).message}`);
  }
  return prepareOpenApi(parsed, file);
}

export function prepareOpenApi(parsed: unknown, source = 'OpenAPI document'): OpenApiDocument {
  if (!isObject(parsed) || typeof parsed.openapi !== 'string') {
    throw new OpenApiError(`${source} is not an OpenAPI document (no "openapi" version field)`);
  }
  const version = /^3\.0\./.test(parsed.openapi) ? '3.0' : /^3\.1\./.test(parsed.openapi) ? '3.1' : undefined;
  if (!version)
    throw new OpenApiError(`${source}: OpenAPI ${parsed.openapi} is not supported (3.0.x or 3.1.x)`);
  if (!isObject(parsed.paths)) throw new OpenApiError(`${source} has no "paths" object`);
  const root = structuredClone(parsed);
  if (version === '3.0') normalize30(root);
  return { version, root, basePaths: basePaths(root) };
}

/**
 * OpenAPI 3.0 schemas are a dialect of draft 4/5; rewrite the parts that differ from 2020-12 so one
 * Ajv (2020) validates both versions: `nullable`, and boolean `exclusiveMinimum/Maximum`.
 */
function normalize30(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) normalize30(item);
    return;
  }
  if (!isObject(node)) return;
  if (node.nullable === true) {
    if (typeof node.type === 'string') node.type = [node.type, 'null'];
    if (Array.isArray(node.enum) && !node.enum.includes(null))
      node.enum = [...(node.enum as unknown[]), null];
  }
  if (typeof node.nullable === 'boolean') delete node.nullable;
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (node[flag] === true && typeof node[bound] === 'number') {
      node[flag] = node[bound];
      delete node[bound];
    } else if (node[flag] === false) {
      delete node[flag];
    }
  }
  for (const value of Object.values(node)) normalize30(value);
}

/** Path prefixes of the top-level `servers`, with server variables replaced by their defaults. */
function basePaths(root: Json): string[] {
  const servers = Array.isArray(root.servers) ? root.servers.filter(isObject) : [];
  const prefixes = new Set<string>();
  for (const server of servers) {
    if (typeof server.url !== 'string') continue;
    const variables = isObject(server.variables) ? server.variables : {};
    const url = server.url.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const variable = variables[name];
      return isObject(variable) && typeof variable.default === 'string' ? variable.default : '';
    });
    let path: string;
    try {
      path = new URL(url, 'http://relative.invalid').pathname;
    } catch {
      continue;
    }
    prefixes.add(path.replace(/\/+$/, ''));
  }
  if (prefixes.size === 0) prefixes.add('');
  return [...prefixes].sort((a, b) => b.length - a.length);
}

/** Escapes one JSON pointer token (RFC 6901). */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A JSON pointer from tokens. */
export function pointer(tokens: readonly (string | number)[]): string {
  return tokens.map((token) => `/${escapePointerToken(String(token))}`).join('');
}

/** The value at a local `#/...` JSON pointer of the document. */
export function resolvePointer(root: Json, ref: string): unknown {
  if (!ref.startsWith('#')) throw new OpenApiError(`only local references are supported, not "${ref}"`);
  let node: unknown = root;
  const path = ref.slice(1);
  if (path === '') return root;
  for (const raw of path.split('/').slice(1)) {
    const token = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node) && !Array.isArray(node)) throw new OpenApiError(`cannot resolve "${ref}"`);
    node = (node as Record<string, unknown>)[token];
    if (node === undefined) throw new OpenApiError(`cannot resolve "${ref}"`);
  }
  return node;
}

/**
 * Follows `$ref` of an OpenAPI object (parameter, request body, response) and returns the object
 * with the pointer of where it really lives, so schemas inside can be referenced by location.
 */
export function deref(root: Json, node: unknown, at: string): { node: Json; at: string } {
  let current = node;
  let location = at;
  for (let depth = 0; depth < 32; depth += 1) {
    if (!isObject(current)) throw new OpenApiError(`${location || '/'}: expected an object`);
    if (typeof current.$ref !== 'string') return { node: current, at: location };
    location = current.$ref.slice(1);
    current = resolvePointer(root, current.$ref);
  }
  throw new OpenApiError(`${at}: $ref chain too long`);
}

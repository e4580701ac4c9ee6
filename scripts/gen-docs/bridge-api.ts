/**
 * docs/bridge-api.md, generated from the bridge's OpenAPI document (schemas/bridge.openapi.yaml):
 * every operation with its parameters, request body and answers, then every component schema.
 */
import { cell, code, GENERATED_NOTE, prose, table } from './markdown.js';

type Node = { [key: string]: unknown };

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
const isNode = (value: unknown): value is Node =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function resolve(doc: Node, value: unknown): Node {
  if (!isNode(value)) return {};
  const ref = value.$ref;
  if (typeof ref !== 'string') return value;
  let target: unknown = doc;
  for (const part of ref.replace(/^#\//, '').split('/')) target = isNode(target) ? target[part] : undefined;
  if (!isNode(target)) throw new Error(`cannot resolve ${ref}`);
  return resolve(doc, target);
}

const refName = (value: Node): string | undefined =>
  typeof value.$ref === 'string' && value.$ref.startsWith('#/components/schemas/')
    ? value.$ref.slice('#/components/schemas/'.length)
    : undefined;

const anchor = (name: string) => `#${name.toLowerCase().replace(/[^a-z0-9-]/g, '')}`;

/** A short type: `string`, `integer (≥ 0)`, `array of [Error](#error)`, `` `a` \| `b` ``. */
export function schemaType(doc: Node, input: unknown): string {
  if (!isNode(input)) return 'any';
  const name = refName(input);
  if (name !== undefined) return `[${name}](${anchor(name)})`;
  const schema = resolve(doc, input);
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => code(String(value))).join(' | ');
  for (const combinator of ['oneOf', 'anyOf', 'allOf'] as const) {
    const options = schema[combinator];
    if (Array.isArray(options))
      return options.map((option) => schemaType(doc, option)).join(combinator === 'allOf' ? ' and ' : ' or ');
  }
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined];
  return types
    .map((type) => {
      if (type === 'array') return `array of ${schemaType(doc, schema.items)}`;
      if (type === 'object' && isNode(schema.additionalProperties))
        return `map of string → ${schemaType(doc, schema.additionalProperties)}`;
      if (type === undefined) return 'any';
      const notes: string[] = [];
      if (typeof schema.format === 'string') notes.push(schema.format);
      if (typeof schema.minimum === 'number') notes.push(`≥ ${schema.minimum}`);
      if (typeof schema.maximum === 'number') notes.push(`≤ ${schema.maximum}`);
      if (typeof schema.minLength === 'number' && schema.minLength > 0)
        notes.push(`≥ ${schema.minLength} chars`);
      if (typeof schema.maxLength === 'number') notes.push(`≤ ${schema.maxLength} chars`);
      if (typeof schema.pattern === 'string') notes.push(`pattern ${code(schema.pattern)}`);
      if (schema.default !== undefined) notes.push(`default ${code(JSON.stringify(schema.default))}`);
      return notes.length ? `${type} (${notes.join(', ')})` : type;
    })
    .join(' or ');
}

function propertyTable(doc: Node, schema: Node): string | undefined {
  const props = schema.properties;
  if (!isNode(props) || Object.keys(props).length === 0) return undefined;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  return table(
    ['Property', 'Type', 'Required', 'Description'],
    Object.entries(props).map(([name, child]) => [
      code(name),
      schemaType(doc, child),
      required.has(name) ? 'yes' : 'no',
      isNode(child) && typeof child.description === 'string' ? cell(child.description) : '',
    ]),
  );
}

function contentTypes(doc: Node, content: unknown): string {
  if (!isNode(content)) return '';
  return Object.entries(content)
    .map(([type, media]) => {
      const schema = isNode(media) ? media.schema : undefined;
      return schema === undefined ? code(type) : `${code(type)}: ${schemaType(doc, schema)}`;
    })
    .join('<br>');
}

function operationBlock(doc: Node, path: string, method: string, pathItem: Node, operation: Node): string {
  const lines: string[] = [];
  const summary = typeof operation.summary === 'string' ? ` — ${cell(operation.summary)}` : '';
  lines.push(`### \`${method.toUpperCase()} ${path}\`${summary}`, '');
  if (typeof operation.operationId === 'string')
    lines.push(`Operation id: ${code(operation.operationId)}.`, '');
  if (typeof operation.description === 'string') lines.push(prose(operation.description), '');

  const parameters = [
    ...(Array.isArray(pathItem.parameters) ? (pathItem.parameters as unknown[]) : []),
    ...(Array.isArray(operation.parameters) ? (operation.parameters as unknown[]) : []),
  ].map((parameter) => resolve(doc, parameter));
  if (parameters.length > 0) {
    lines.push(
      table(
        ['Parameter', 'In', 'Type', 'Required', 'Description'],
        parameters.map((p) => [
          code(String(p.name)),
          String(p.in),
          schemaType(doc, p.schema),
          p.required === true ? 'yes' : 'no',
          typeof p.description === 'string' ? p.description : '',
        ]),
      ),
      '',
    );
  }

  if (operation.requestBody !== undefined) {
    const body = resolve(doc, operation.requestBody);
    const required = body.required === true ? 'required' : 'optional';
    const description = typeof body.description === 'string' ? ` ${cell(body.description)}` : '';
    lines.push(`Request body (${required}):${description}`, '');
    lines.push(
      table(
        ['Content type', 'Schema'],
        Object.entries(isNode(body.content) ? body.content : {}).map(([type, media]) => [
          code(type),
          isNode(media) && media.schema !== undefined ? schemaType(doc, media.schema) : '—',
        ]),
      ),
      '',
    );
  }

  const responses = isNode(operation.responses) ? operation.responses : {};
  lines.push(
    table(
      ['Status', 'Description', 'Body'],
      Object.entries(responses).map(([status, value]) => {
        const response = resolve(doc, value);
        return [
          code(status),
          typeof response.description === 'string' ? response.description : '',
          contentTypes(doc, response.content) || '—',
        ];
      }),
    ),
    '',
  );
  return lines.join('\n');
}

export function renderBridgeApiDoc(doc: Node): string {
  const info = isNode(doc.info) ? doc.info : {};
  const paths = isNode(doc.paths) ? doc.paths : {};
  const lines: string[] = [
    '# Bridge REST API',
    '',
    GENERATED_NOTE(
      '`schemas/bridge.openapi.yaml` (the document the bridge validates requests against and serves at `GET /openapi`)',
    ),
    '',
    `${typeof info.title === 'string' ? info.title : 'Bridge'}, version ${typeof info.version === 'string' ? info.version : '?'}.`,
    '',
  ];
  if (typeof info.description === 'string') lines.push(prose(info.description), '');
  const servers = Array.isArray(doc.servers) ? (doc.servers as Node[]) : [];
  if (servers.length > 0)
    lines.push(`Default base URL: ${servers.map((s) => code(String(s.url))).join(', ')}.`, '');

  const operations: { path: string; method: string; pathItem: Node; operation: Node }[] = [];
  for (const [path, value] of Object.entries(paths)) {
    if (!isNode(value)) continue;
    for (const method of METHODS) {
      const operation = value[method];
      if (isNode(operation)) operations.push({ path, method, pathItem: value, operation });
    }
  }

  lines.push('## Operations', '');
  lines.push(
    table(
      ['Method', 'Path', 'Summary'],
      operations.map(({ path, method, operation }) => [
        method.toUpperCase(),
        code(path),
        typeof operation.summary === 'string' ? operation.summary : '',
      ]),
    ),
    '',
  );
  for (const { path, method, pathItem, operation } of operations) {
    lines.push(operationBlock(doc, path, method, pathItem, operation));
  }

  const components = isNode(doc.components) ? doc.components : {};
  const schemas = isNode(components.schemas) ? components.schemas : {};
  if (Object.keys(schemas).length > 0) {
    lines.push('## Schemas', '');
    for (const [name, value] of Object.entries(schemas)) {
      const schema = resolve(doc, value);
      lines.push(`### ${name}`, '');
      if (typeof schema.description === 'string') lines.push(prose(schema.description), '');
      const props = propertyTable(doc, schema);
      if (props) {
        const extra = schema.additionalProperties === false ? ' No other properties are accepted.' : '';
        lines.push(`Type: ${schemaType(doc, { ...schema, properties: undefined })}.${extra}`, '', props, '');
      } else {
        lines.push(`Type: ${schemaType(doc, schema)}.`, '');
        if (schema.type === 'array' && isNode(schema.items) && refName(schema.items) === undefined) {
          const items = propertyTable(doc, resolve(doc, schema.items));
          if (items) lines.push('Items:', '', items, '');
        }
      }
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

/**
 * The key tables of docs/configuration.md, generated from schemas/config.schema.json: every key,
 * its type, default and description (the schema's own `description`).
 *
 * The page mixes hand-written prose with generated regions, so prose survives a regeneration:
 *
 *   <!-- gen:config-table ingress -->        the table of every key under `ingress`
 *   ...generated...
 *   <!-- /gen:config-table -->
 *
 *   <!-- gen:config-sections -->             heading, description and table of every top-level
 *   ...generated...                          section that has no config-table region of its own
 *   <!-- /gen:config-sections -->
 *
 * So a section added to the schema shows up without touching the page; moving it out of the
 * catch-all region (to add prose around it) is a matter of giving it its own region.
 */
import { cell, code, table } from './markdown.js';

export type JsonSchema = { [key: string]: unknown };

const TABLE_REGION = /<!-- gen:config-table ([A-Za-z0-9_.-]+) -->\n[\s\S]*?<!-- \/gen:config-table -->/g;
const SECTIONS_REGION = /<!-- gen:config-sections -->\n[\s\S]*?<!-- \/gen:config-sections -->/;

export interface KeyRow {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
}

function deref(root: JsonSchema, schema: JsonSchema): JsonSchema {
  const ref = schema.$ref;
  if (typeof ref !== 'string') return schema;
  const match = /^#\/definitions\/(.+)$/.exec(ref);
  const definitions = root.definitions as Record<string, JsonSchema> | undefined;
  const target = match ? definitions?.[match[1]] : undefined;
  if (!target) throw new Error(`cannot resolve ${ref}`);
  // The referring property's own title/description/default win over the definition's.
  const own = { ...schema };
  delete own.$ref;
  return { ...deref(root, target), ...own };
}

const properties = (schema: JsonSchema) => (schema.properties ?? {}) as Record<string, JsonSchema>;
const isSchema = (value: unknown): value is JsonSchema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An enum or const value: strings as they are written in YAML, anything else as JSON. */
const literal = (value: unknown) => code(typeof value === 'string' ? value : JSON.stringify(value));

function bounds(schema: JsonSchema): string[] {
  const out: string[] = [];
  if (typeof schema.minimum === 'number') out.push(`≥ ${schema.minimum}`);
  if (typeof schema.exclusiveMinimum === 'number') out.push(`> ${schema.exclusiveMinimum}`);
  if (typeof schema.maximum === 'number') out.push(`≤ ${schema.maximum}`);
  if (typeof schema.exclusiveMaximum === 'number') out.push(`< ${schema.exclusiveMaximum}`);
  return out;
}

/** A readable type: `integer (≥ 0, ≤ 65535)`, `` `a` \| `b` ``, `array of string`, `map of name → object`. */
export function typeOf(root: JsonSchema, input: JsonSchema): string {
  const schema = deref(root, input);
  if (Array.isArray(schema.enum)) return schema.enum.map(literal).join(' | ');
  if (schema.const !== undefined) return literal(schema.const);
  for (const combinator of ['oneOf', 'anyOf'] as const) {
    const options = schema[combinator];
    if (Array.isArray(options))
      return options.map((option) => typeOf(root, option as JsonSchema)).join(' or ');
  }
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined];
  const parts = types.map((type) => {
    switch (type) {
      case 'string': {
        const notes: string[] = [];
        if (typeof schema.format === 'string') notes.push(schema.format);
        if (schema.minLength === 1) notes.push('non-empty');
        else if (typeof schema.minLength === 'number') notes.push(`≥ ${schema.minLength} chars`);
        if (typeof schema.maxLength === 'number') notes.push(`≤ ${schema.maxLength} chars`);
        if (typeof schema['x-pattern-message'] === 'string') notes.push(schema['x-pattern-message']);
        else if (typeof schema.pattern === 'string')
          notes.push(
            schema.pattern.length <= 40 ? `pattern ${code(schema.pattern)}` : 'pattern in the schema',
          );
        return notes.length ? `string (${notes.join(', ')})` : 'string';
      }
      case 'integer':
      case 'number': {
        const notes = bounds(schema);
        return notes.length ? `${type} (${notes.join(', ')})` : type;
      }
      case 'array': {
        const items = isSchema(schema.items) ? typeOf(root, schema.items) : 'any';
        const notes: string[] = [];
        if (typeof schema.minItems === 'number' && schema.minItems > 0)
          notes.push(`≥ ${schema.minItems} items`);
        if (typeof schema.maxItems === 'number') notes.push(`≤ ${schema.maxItems} items`);
        if (schema.uniqueItems === true) notes.push('unique');
        return `array of ${items}${notes.length ? ` (${notes.join(', ')})` : ''}`;
      }
      case 'object': {
        if (isSchema(schema.additionalProperties)) {
          return `map of ${mapKeyName('', schema)} → ${typeOf(root, schema.additionalProperties)}`;
        }
        return 'object';
      }
      case undefined:
        return 'any';
      default:
        return type;
    }
  });
  return parts.join(' or ');
}

/** The placeholder of a map's keys in a path: `egress.services.<service>`, `split.<group>`. */
function mapKeyName(property: string, schema: JsonSchema): string {
  if (property.length > 3 && property.endsWith('s')) return property.slice(0, -1);
  const title = isSchema(schema.additionalProperties) ? schema.additionalProperties.title : undefined;
  const word = typeof title === 'string' ? title.trim().split(/\s+/).at(-1)?.toLowerCase() : undefined;
  return word || 'name';
}

function defaultOf(schema: JsonSchema, required: boolean): string {
  if (schema.default !== undefined) return code(JSON.stringify(schema.default));
  return required ? 'required' : '—';
}

function describe(schema: JsonSchema): string {
  const parts = [typeof schema.description === 'string' ? schema.description : ''];
  if (schema['x-secret'] === true && !/redact/i.test(parts[0]))
    parts.push('Secret: shown as `***` in `/config` and logs.');
  return cell(parts.filter(Boolean).join(' '));
}

/** Every key under `schema` (an object, an array of objects or a map of objects), depth first. */
export function keyRows(root: JsonSchema, input: JsonSchema, prefix: string): KeyRow[] {
  const schema = deref(root, input);
  const rows: KeyRow[] = [];
  const type = schema.type;
  if (type === 'array' && isSchema(schema.items)) {
    return keyRows(root, schema.items, `${prefix}[]`);
  }
  if (type === 'object' && isSchema(schema.additionalProperties) && !schema.properties) {
    const values = deref(root, schema.additionalProperties);
    if (values.type === 'object' || values.type === 'array') {
      const name = prefix.split('.').at(-1) ?? '';
      return keyRows(root, values, `${prefix}.<${mapKeyName(name.replace(/\[\]$/, ''), schema)}>`);
    }
    return rows;
  }
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  for (const [name, child] of Object.entries(properties(schema))) {
    const key = prefix ? `${prefix}.${name}` : name;
    const resolved = deref(root, child);
    rows.push({
      key,
      type: typeOf(root, child),
      default: defaultOf(resolved, required.has(name)),
      description: describe(resolved),
    });
    rows.push(...keyRows(root, child, key));
  }
  return rows;
}

export function sectionTable(root: JsonSchema, section: string): string {
  const schema = properties(root)[section];
  if (!schema)
    throw new Error(`docs/configuration.md names section "${section}", which the schema does not have`);
  const rows = keyRows(root, schema, section);
  return table(
    ['Key', 'Type', 'Default', 'Description'],
    rows.map((row) => [code(row.key), row.type, row.default, row.description]),
  );
}

function sectionBlock(root: JsonSchema, section: string): string {
  const schema = deref(root, properties(root)[section]);
  const title = typeof schema.title === 'string' ? ` — ${schema.title}` : '';
  const lines = [`### \`${section}\`${title}`, ''];
  if (typeof schema.description === 'string') lines.push(cell(schema.description), '');
  lines.push(`Type: ${typeOf(root, schema)}; default ${defaultOf(schema, false)}.`, '');
  lines.push(sectionTable(root, section));
  return lines.join('\n');
}

/**
 * Regenerates every region of `page` (the current docs/configuration.md) from the schema. A page
 * without the catch-all region gets the sections that have no table appended under a heading.
 */
export function renderConfigurationDoc(root: JsonSchema, page: string): string {
  const placed = new Set<string>();
  let out = page.replace(TABLE_REGION, (_match, section: string) => {
    placed.add(section.split('.')[0]);
    return `<!-- gen:config-table ${section} -->\n${sectionTable(root, section)}\n<!-- /gen:config-table -->`;
  });
  const unplaced = Object.keys(properties(root)).filter((section) => !placed.has(section));
  const region = `<!-- gen:config-sections -->\n${unplaced.map((s) => `${sectionBlock(root, s)}\n`).join('\n')}<!-- /gen:config-sections -->`;
  if (SECTIONS_REGION.test(out)) out = out.replace(SECTIONS_REGION, () => region);
  else if (unplaced.length > 0) out = `${out.trimEnd()}\n\n## More sections\n\n${region}\n`;
  return out;
}

/**
 * Generates services/runtime/config.generated.ts from schemas/config.schema.json.
 *
 *   npm run gen:config-types            writes the file
 *   npm run gen:config-types -- --check exits 1 when the committed file is stale
 *
 * The types describe the VALIDATED config, not the document a user writes: validation fills every
 * default, so a property with a `default` is required in the type; properties without one (`tls`)
 * stay optional. Type names are derived, not taken from the schema titles (those are user docs):
 * the root is `MeshConfig`, each top-level section `<Section>Config` (admin → AdminConfig), each entry
 * of `definitions` `<Name>Config` (Tls → TlsConfig; reference them as `#/definitions/<Name>`).
 * Anything else is emitted inline, so a new section needs no change here.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';
import * as prettier from 'prettier';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const configSchemaFile = resolve(repoRoot, 'schemas/config.schema.json');
export const generatedTypesFile = resolve(repoRoot, 'services/runtime/config.generated.ts');

const BANNER = [
  '// generated — do not edit, run npm run gen:config-types',
  '// Source: schemas/config.schema.json. Types of the validated config: keys with a default are required.',
].join('\n');

type SchemaNode = Record<string, unknown>;

/** The contents config.generated.ts must have for the current schema (prettier-formatted). */
export async function generateConfigTypes(): Promise<string> {
  const schema = JSON.parse(await readFile(configSchemaFile, 'utf8')) as SchemaNode;
  const typed = await compile(prepareForTypes(schema), 'MeshConfig', {
    bannerComment: BANNER,
    additionalProperties: false,
    // `minItems: 1` would otherwise become a `[string, ...string[]]` tuple; plain arrays are easier to use.
    ignoreMinAndMaxItems: true,
    strictIndexSignatures: true,
    unknownAny: true,
    // Definitions are only reachable through tsType now (see prepareForTypes), so emit them all.
    unreachableDefinitions: true,
    format: false,
  });
  const prettierOptions = (await prettier.resolveConfig(generatedTypesFile)) ?? {};
  return prettier.format(typed, { ...prettierOptions, filepath: generatedTypesFile });
}

/** A copy of the schema that json-schema-to-typescript turns into the types we want (see top comment). */
function prepareForTypes(original: SchemaNode): SchemaNode {
  const schema = structuredClone(original);
  forEachSchemaNode(schema, (node) => {
    delete node.title;
    // `$ref` with a sibling description would become a second copy of the referenced type (TlsConfig1);
    // name the type directly instead and keep the description for the property's doc comment.
    const definition =
      typeof node.$ref === 'string' ? /^#\/definitions\/([^/]+)$/.exec(node.$ref)?.[1] : undefined;
    if (definition !== undefined) {
      for (const keyword of Object.keys(node)) if (keyword !== 'description') delete node[keyword];
      node.tsType = `${pascalCase(definition)}Config`;
    }
    const properties = node.properties;
    if (isSchemaNode(properties)) {
      const required = new Set(Array.isArray(node.required) ? (node.required as string[]) : []);
      for (const [key, property] of Object.entries(properties)) {
        if (isSchemaNode(property) && 'default' in property) required.add(key);
      }
      if (required.size > 0) node.required = [...required];
    }
  });
  schema.title = 'MeshConfig';
  for (const [key, section] of Object.entries(asSchemaNode(schema.properties))) {
    if (isSchemaNode(section) && section.type === 'object') section.title = `${pascalCase(key)}Config`;
  }
  for (const [name, definition] of Object.entries(asSchemaNode(schema.definitions))) {
    if (isSchemaNode(definition)) definition.title = `${pascalCase(name)}Config`;
  }
  return schema;
}

const SUBSCHEMA_MAPS = ['properties', 'definitions', '$defs', 'patternProperties'];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'items'];
const SUBSCHEMAS = ['items', 'additionalProperties', 'additionalItems', 'not', 'if', 'then', 'else'];

function forEachSchemaNode(node: SchemaNode, visit: (node: SchemaNode) => void): void {
  visit(node);
  for (const keyword of SUBSCHEMA_MAPS) {
    for (const child of Object.values(asSchemaNode(node[keyword]))) {
      if (isSchemaNode(child)) forEachSchemaNode(child, visit);
    }
  }
  for (const keyword of SUBSCHEMA_LISTS) {
    const list = node[keyword];
    if (Array.isArray(list))
      for (const child of list) if (isSchemaNode(child)) forEachSchemaNode(child, visit);
  }
  for (const keyword of SUBSCHEMAS) {
    const child = node[keyword];
    if (isSchemaNode(child)) forEachSchemaNode(child, visit);
  }
}

function isSchemaNode(value: unknown): value is SchemaNode {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function asSchemaNode(value: unknown): SchemaNode {
  return isSchemaNode(value) ? value : {};
}

function pascalCase(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part !== '')
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

async function main(args: readonly string[]): Promise<number> {
  const generated = await generateConfigTypes();
  if (args.includes('--check')) {
    const committed = await readFile(generatedTypesFile, 'utf8').catch(() => '');
    if (committed === generated) return 0;
    console.error(`${generatedTypesFile} is stale; run npm run gen:config-types`);
    return 1;
  }
  await writeFile(generatedTypesFile, generated);
  console.log(`wrote ${generatedTypesFile}`);
  return 0;
}

// Run only as a script: the drift test imports generateConfigTypes without writing anything.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

/**
 * The generated reference docs, as `{ file, content }`: what `npm run gen:docs` writes and what the
 * drift test compares with the files in the repository.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { renderBridgeApiDoc } from './bridge-api.js';
import { renderConfigurationDoc, type JsonSchema } from './config.js';
import { renderMetricsDoc } from './metrics.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface GeneratedDoc {
  /** Relative to the repository root. */
  readonly file: string;
  readonly content: string;
}

export async function generateDocs(root = repoRoot): Promise<GeneratedDoc[]> {
  const read = (file: string) => readFile(resolve(root, file), 'utf8');
  const schema = JSON.parse(await read('schemas/config.schema.json')) as JsonSchema;
  const openapi = parse(await read('schemas/bridge.openapi.yaml')) as Record<string, unknown>;
  return [
    {
      file: 'docs/configuration.md',
      content: renderConfigurationDoc(schema, await read('docs/configuration.md')),
    },
    { file: 'docs/bridge-api.md', content: renderBridgeApiDoc(openapi) },
    { file: 'docs/metrics.md', content: renderMetricsDoc() },
  ];
}

/** The generated files whose content in the repository differs from what the generator makes. */
export async function staleDocs(root = repoRoot): Promise<string[]> {
  const stale: string[] = [];
  for (const doc of await generateDocs(root)) {
    const current = await readFile(resolve(root, doc.file), 'utf8').catch(() => undefined);
    if (current !== doc.content) stale.push(doc.file);
  }
  return stale;
}

/**
 * Generates the reference docs from their sources, so they are never copied by hand:
 *
 *   docs/configuration.md  key tables from schemas/config.schema.json (prose around them is kept)
 *   docs/bridge-api.md     from schemas/bridge.openapi.yaml
 *   docs/metrics.md        from the metrics createMetrics() registers
 *
 *   npm run gen:docs               writes the files
 *   npm run gen:docs -- --check    exits 1 naming the files that are out of date
 *
 * Deterministic: the same sources always give the same bytes, so it can be re-run at any time.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { generateDocs, repoRoot, staleDocs } from './gen-docs/index.js';

const check = process.argv.includes('--check');
if (check) {
  const stale = await staleDocs();
  if (stale.length > 0) {
    process.stderr.write(`out of date (run npm run gen:docs): ${stale.join(', ')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('generated docs are up to date\n');
  }
} else {
  for (const doc of await generateDocs()) {
    await writeFile(resolve(repoRoot, doc.file), doc.content);
    process.stdout.write(`wrote ${doc.file}\n`);
  }
}

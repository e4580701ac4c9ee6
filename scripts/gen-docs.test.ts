import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { renderBridgeApiDoc } from './gen-docs/bridge-api.js';
import { keyRows, renderConfigurationDoc, type JsonSchema } from './gen-docs/config.js';
import { generateDocs, repoRoot } from './gen-docs/index.js';
import { registeredMeshMetrics, renderMetricsDoc } from './gen-docs/metrics.js';

const read = (file: string) => readFile(resolve(repoRoot, file), 'utf8');

describe('generated reference docs (npm run gen:docs)', () => {
  it('are up to date in the repository', async () => {
    const stale: string[] = [];
    for (const doc of await generateDocs()) {
      if ((await read(doc.file)) !== doc.content) stale.push(doc.file);
    }
    assert.deepEqual(stale, [], `out of date: run npm run gen:docs (${stale.join(', ')})`);
  });

  it('are deterministic: generating twice gives the same bytes', async () => {
    const first = await generateDocs();
    const second = await generateDocs();
    assert.deepEqual(second, first);
  });

  describe('docs/configuration.md', () => {
    const schema: JsonSchema = {
      definitions: {
        Tls: {
          type: 'object',
          required: ['cert'],
          properties: { cert: { type: 'string', minLength: 1, description: 'Certificate.' } },
        },
      },
      properties: {
        alpha: {
          title: 'Alpha',
          description: 'The alpha section.',
          type: 'object',
          default: {},
          properties: {
            port: { type: 'integer', minimum: 0, maximum: 65535, default: 1, description: 'A port.' },
            tls: { $ref: '#/definitions/Tls', description: 'TLS of alpha.' },
            mode: { type: 'string', enum: ['a', 'b'], default: 'a', description: 'Pipe | in text.' },
            services: {
              type: 'object',
              default: {},
              description: 'By name.',
              additionalProperties: {
                title: 'Service',
                type: 'object',
                properties: { url: { type: 'string', description: 'Where.', 'x-secret': true } },
              },
            },
          },
        },
        beta: {
          title: 'Beta',
          description: 'A list.',
          type: 'array',
          default: [],
          items: {
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', description: 'Its name.' } },
          },
        },
      },
    };

    it('lists every key with its type, default and description, nested ones included', () => {
      const rows = keyRows(schema, schema, '');
      const byKey = new Map(rows.map((row) => [row.key, row]));
      assert.deepEqual(
        rows.map((row) => row.key),
        [
          'alpha',
          'alpha.port',
          'alpha.tls',
          'alpha.tls.cert',
          'alpha.mode',
          'alpha.services',
          'alpha.services.<service>.url',
          'beta',
          'beta[].name',
        ],
      );
      assert.equal(byKey.get('alpha.port')?.type, 'integer (≥ 0, ≤ 65535)');
      assert.equal(byKey.get('alpha.port')?.default, '`1`');
      assert.equal(byKey.get('alpha.tls.cert')?.default, 'required');
      assert.equal(byKey.get('alpha.tls')?.description, 'TLS of alpha.');
      assert.equal(byKey.get('alpha.mode')?.type, '`a` | `b`');
      assert.equal(byKey.get('alpha.mode')?.description, 'Pipe \\| in text.');
      assert.match(byKey.get('alpha.services.<service>.url')?.description ?? '', /Secret/);
      assert.equal(byKey.get('beta[].name')?.default, 'required');
    });

    it('fills the marked regions, keeps the prose, and puts unplaced sections in the catch-all region', () => {
      const page = [
        'Intro written by hand.',
        '<!-- gen:config-table alpha -->',
        'stale rows',
        '<!-- /gen:config-table -->',
        'Notes on alpha, by hand.',
        '<!-- gen:config-sections -->',
        '<!-- /gen:config-sections -->',
        'Outro.',
        '',
      ].join('\n');
      const out = renderConfigurationDoc(schema, page);
      assert.match(out, /^Intro written by hand\.\n<!-- gen:config-table alpha -->\n\| Key \|/);
      assert.doesNotMatch(out, /stale rows/);
      assert.match(out, /\| `alpha\.tls\.cert` \| string \(non-empty\) \| required \| Certificate\. \|/);
      assert.match(out, /Notes on alpha, by hand\./);
      assert.match(out, /<!-- gen:config-sections -->\n### `beta` — Beta\n\nA list\.\n/);
      assert.match(out, /\| `beta\[\]\.name` \|/);
      assert.doesNotMatch(out.split('<!-- gen:config-sections -->')[1], /`alpha\.port`/);
      assert.match(out, /Outro\.\n$/);
      assert.equal(renderConfigurationDoc(schema, out), out, 'regenerating the output changes nothing');
    });

    it('names every key of the real schema in the repository page', async () => {
      const real = JSON.parse(await read('schemas/config.schema.json')) as JsonSchema;
      const page = await read('docs/configuration.md');
      const missing = keyRows(real, real, '')
        .map((row) => row.key)
        .filter((key) => /[.[]/.test(key))
        .filter((key) => !page.includes(`| \`${key}\` |`));
      assert.deepEqual(missing, []);
    });
  });

  describe('docs/bridge-api.md', () => {
    it('has a heading for every operation of the OpenAPI document', async () => {
      const doc = parse(await read('schemas/bridge.openapi.yaml')) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const page = renderBridgeApiDoc(doc);
      const missing: string[] = [];
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const method of ['get', 'put', 'post', 'delete', 'patch']) {
          if (item[method] && !page.includes(`### \`${method.toUpperCase()} ${path}\``))
            missing.push(`${method} ${path}`);
        }
      }
      assert.deepEqual(missing, []);
      assert.match(page, /\n## Schemas\n/);
    });
  });

  describe('docs/metrics.md', () => {
    it('lists exactly the mesh_* metrics createMetrics() registers, with their labels', () => {
      const metrics = registeredMeshMetrics();
      assert.ok(metrics.some((metric) => metric.name === 'mesh_consumer_lag'));
      const page = renderMetricsDoc(metrics);
      const listed = [...page.matchAll(/^\| `(mesh_[a-z_]+)` \| (\w+) \|/gm)].map((match) => match[1]);
      assert.deepEqual(
        listed,
        metrics.map((metric) => metric.name),
      );
      assert.match(page, /\| `mesh_consumer_lag` \| gauge \| `group`, `topic`, `partition` \|/);
    });
  });
});

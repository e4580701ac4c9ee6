import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig } from './check-config.js';

describe('check-config', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-check-config-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const code = await checkConfig(file, env, (line) => lines.push(line));
    return { code, lines };
  }

  it('prints ok and returns 0 for a valid file', async () => {
    const file = join(dir, 'valid.yaml');
    await writeFile(file, 'admin:\n  port: 0\nlog:\n  level: debug\n');
    assert.deepEqual(await run(file), { code: 0, lines: ['ok'] });
  });

  it('prints one line per problem naming each pointer and returns 2', async () => {
    const file = join(dir, 'invalid.yaml');
    await writeFile(
      file,
      ['admin:', '  colour: blue', '  port: 70000', 'ingress:', '  enabled: "yes"', ''].join('\n'),
    );
    const { code, lines } = await run(file);
    assert.equal(code, 2);
    assert.deepEqual(lines, [
      '/admin/colour: unknown key "colour"',
      '/admin/port: must be <= 65535',
      '/ingress/enabled: must be boolean',
    ]);
  });

  it('reports a missing file as one problem on / and returns 2', async () => {
    const file = join(dir, 'missing.yaml');
    const { code, lines } = await run(file);
    assert.equal(code, 2);
    assert.deepEqual(lines, [`/: file not found: ${file}`]);
  });

  it('reports a YAML syntax error with its position', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'admin:\n  port: [1, 2\n');
    const { code, lines } = await run(file);
    assert.equal(code, 2);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      new RegExp(`^/: invalid YAML at ${file.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `),
    );
  });

  it('applies the environment like the sidecar does', async () => {
    const file = join(dir, 'env.yaml');
    await writeFile(file, 'admin:\n  port: ${ADMIN_PORT}\n');
    assert.deepEqual(await run(file, { ADMIN_PORT: '15001' }), { code: 0, lines: ['ok'] });
    assert.deepEqual(await run(file, {}), {
      code: 2,
      lines: [
        '/admin/port: environment variable ADMIN_PORT is not set (write ${ADMIN_PORT:-default} to give a default)',
      ],
    });
    assert.deepEqual(await run(file, { ADMIN_PORT: '1', LOG_LEVEL: 'loud' }), {
      code: 2,
      lines: ['/log/level: must be one of: fatal, error, warn, info, debug, trace, silent (from LOG_LEVEL)'],
    });
  });
});

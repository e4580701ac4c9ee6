/**
 * The Dockerfile cannot be built in this test run (no container engine is assumed), so its
 * contract is checked statically — base image, non-root numeric USER, exec-form ENTRYPOINT on the
 * built CLI, the EXPOSEd ports — and the build it describes is replayed without Docker: the files
 * the .dockerignore allowlist lets into the context are copied to a temp dir, compiled with the
 * same `npm run build` command (tsc), and the compiled entrypoint is run.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { chartDir, repoRoot } from '../../scripts/helm/chart.js';
import { SIDECAR_NODE_FLAGS } from '../../services/sidecar/node-flags.js';

const run = promisify(execFile);

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** The instructions of the last stage (after its FROM). */
function finalStage(all: Instruction[]): Instruction[] {
  const lastFrom = all.map((i) => i.keyword).lastIndexOf('FROM');
  return all.slice(lastFrom);
}

// The listener ports of the contract (README "Running the sidecar", contract section 2).
const contractPorts = { admin: 15000, egress: 15001, bridge: 15002, ingress: 15006 };

describe('Dockerfile', () => {
  let all: Instruction[];
  let stage: Instruction[];
  let dockerignore: string[];

  before(async () => {
    all = instructions(await readFile(join(repoRoot, 'Dockerfile'), 'utf8'));
    stage = finalStage(all);
    dockerignore = (await readFile(join(repoRoot, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  });

  const last = (keyword: string) => stage.filter((i) => i.keyword === keyword).at(-1);

  it('builds in two stages on node:20-bookworm-slim', () => {
    const nodeImage = all.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    assert.equal(nodeImage?.args, 'NODE_IMAGE=node:20-bookworm-slim');
    const froms = all.filter((i) => i.keyword === 'FROM').map((i) => i.args);
    assert.deepEqual(froms, ['${NODE_IMAGE} AS build', '${NODE_IMAGE} AS runtime']);
  });

  it('the runtime stage runs as a non-root numeric user, the one the chart sets', async () => {
    const user = last('USER')?.args;
    assert.match(user ?? '', /^\d+(:\d+)?$/, 'numeric, so runAsNonRoot can verify it');
    const uid = Number(user!.split(':')[0]);
    assert.notEqual(uid, 0);
    const values = parse(await readFile(join(chartDir, 'values.yaml'), 'utf8')) as {
      sidecar: { securityContext: { runAsUser: number } };
    };
    assert.equal(values.sidecar.securityContext.runAsUser, uid);
  });

  it('the entrypoint is the built mesh-sidecar CLI, in exec form', async () => {
    const entrypoint = JSON.parse(last('ENTRYPOINT')?.args ?? 'null') as unknown;
    assert.deepEqual(entrypoint, ['node', ...SIDECAR_NODE_FLAGS, '/app/dist/services/sidecar/bin.js']);
    const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    assert.equal(`/app/${pkg.bin['mesh-sidecar']}`, '/app/dist/services/sidecar/bin.js');
    assert.equal(last('WORKDIR')?.args, '/app');
  });

  it('exposes exactly the contract ports', () => {
    const exposed = stage
      .filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/))
      .map(Number)
      .sort();
    assert.deepEqual(exposed, Object.values(contractPorts).sort());
  });

  it('the runtime stage holds only the build output, schemas, package.json and production dependencies', () => {
    const copies = stage.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.deepEqual(copies, [
      '--from=build /src/package.json ./package.json',
      '--from=build /src/node_modules ./node_modules',
      '--from=build /src/dist ./dist',
      '--from=build /src/schemas ./schemas',
    ]);
    const build = all.slice(0, all.length - stage.length);
    assert.ok(build.some((i) => i.keyword === 'RUN' && /npm ci\b/.test(i.args)));
    assert.ok(
      build.some((i) => i.keyword === 'RUN' && /npm run build/.test(i.args) && /npm prune --omit=dev/.test(i.args)),
    );
    assert.ok(!stage.some((i) => i.keyword === 'RUN'), 'nothing runs (or is installed) in the runtime stage');
  });

  it('.dockerignore is an allowlist that lets in every source the build stage copies', () => {
    assert.equal(dockerignore[0], '*');
    const allowed = new Set(dockerignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1)));
    const sources = all
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const source of sources) assert.ok(allowed.has(source), `${source} is in the build context`);
  });

  describe('the build it describes, replayed without Docker', function () {
    this.timeout(180_000);
    let dir: string | undefined;
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('compiles from the allowed context alone, and the entrypoint runs check-config', async () => {
      dir = await mkdtemp(join(tmpdir(), 'mesh-docker-context-'));
      const allowed = dockerignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
      const excluded = dockerignore.filter((l) => !l.startsWith('!') && l !== '*');
      assert.deepEqual(excluded, ['**/*.test.ts'], 'update this replay when .dockerignore changes');
      for (const entry of allowed) {
        await cp(join(repoRoot, entry), join(dir, entry), {
          recursive: true,
          filter: (source) => !source.endsWith('.test.ts'),
        });
      }
      // `npm ci` is not replayed (no registry access in tests): the checkout's modules stand in.
      await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
      await run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
        cwd: dir,
      });

      const entrypoint = join(dir, 'dist/services/sidecar/bin.js');
      const version = await run(process.execPath, [entrypoint, '--version'], { cwd: dir });
      const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
      assert.match(version.stdout, new RegExp(pkg.version.replace(/\./g, '\\.')));

      const config = join(dir, 'config.yaml');
      await writeFile(config, `admin:\n  port: ${contractPorts.admin}\ningress:\n  port: ${contractPorts.ingress}\n`);
      const check = await run(process.execPath, [entrypoint, 'check-config', config], { cwd: '/' });
      assert.equal(check.stdout.trim(), 'ok');
    });
  });
});

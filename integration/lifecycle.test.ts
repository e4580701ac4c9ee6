import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startDemoBackend, type DemoBackend } from '../services/demo-backend/server.js';
import { metricValue, runCli, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';

function baseConfig(appUrl: string, overrides: Record<string, unknown> = {}) {
  return {
    admin: { host: '127.0.0.1', port: 0 },
    ingress: { host: '127.0.0.1', port: 0, target: appUrl, timeoutMs: 10_000 },
    shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
    log: { level: 'info' },
    ...overrides,
  };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(url);
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** Resolves true when a TCP connection is refused, false when it is accepted. */
function connectionRefused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('sidecar process lifecycle', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  let app: DemoBackend;

  beforeEach(async () => {
    app = await startDemoBackend();
    cleanup.defer(() => app.close());
  });
  afterEach(() => cleanup.run());

  async function start(config: unknown): Promise<SidecarProcess> {
    const sidecar = await startSidecarProcess(config);
    cleanup.defer(() => sidecar.cleanup());
    return sidecar;
  }

  it('serves healthz, readyz, metrics and the effective config on the admin listener', async () => {
    const sidecar = await start(baseConfig(app.url));
    const admin = sidecar.urls.admin;
    assert.deepEqual(await getJson(`${admin}/healthz`), { status: 200, body: { status: 'alive' } });
    const ready = await waitFor(
      async () => {
        const res = await getJson(`${admin}/readyz`);
        return res.status === 200 ? res : undefined;
      },
      { what: 'readyz 200' },
    );
    assert.equal(ready.body.status, 'ready');

    const forwarded = await request(`${sidecar.urls.ingress}/hello`);
    assert.equal(forwarded.statusCode, 200);
    assert.deepEqual(await forwarded.body.json(), { message: 'hello from the demo backend' });

    const metrics = await (await request(`${admin}/metrics`)).body.text();
    assert.match(metrics, /^process_cpu_user_seconds_total /m);
    assert.match(
      metrics,
      /^mesh_http_server_requests_total\{listener="ingress",method="GET",route="forward",status="200"\} 1$/m,
    );
    assert.match(
      metrics,
      /^mesh_http_server_request_duration_seconds_bucket\{le="0.001",listener="ingress"/m,
    );

    const config = await getJson(`${admin}/config`);
    assert.equal((config.body.ingress as { target: string }).target, app.url);
    assert.equal((config.body.kafka as { clientId: string }).clientId, 'mesh-sidecar');

    const unknown = await request(`${admin}/nope`);
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.headers['content-type'], 'application/problem+json');
    assert.equal(((await unknown.body.json()) as { code: string }).code, 'MESH_NOT_FOUND');
  });

  it('answers readyz 503 naming the app while the app is down', async () => {
    await app.close();
    const sidecar = await start({ ...baseConfig(app.url) });
    const res = await getJson(`${sidecar.urls.admin}/readyz`);
    assert.equal(res.status, 503);
    assert.match(
      String(res.body.detail),
      /ingress: app at http:\/\/127\.0\.0\.1:\d+ is not accepting connections/,
    );
  });

  it('drains on SIGTERM: not ready at once, refuses new connections after the drain delay, finishes in-flight requests, exits 0', async () => {
    const sidecar = await start(baseConfig(app.url, { shutdown: { drainDelayMs: 700, timeoutMs: 15_000 } }));
    const admin = sidecar.urls.admin;
    const ingress = sidecar.urls.ingress;
    await waitFor(async () => (await getJson(`${admin}/readyz`)).status === 200, { what: 'ready' });

    const slow = [1, 2, 3].map(() =>
      request(`${ingress}/slow?ms=2500`).then(async (res) => ({
        status: res.statusCode,
        body: await res.body.json(),
      })),
    );
    await waitFor(() => app.inFlight() === 3, { what: 'three slow requests at the app' });

    sidecar.proc.kill('SIGTERM');
    const readyz = await waitFor(
      async () => {
        const res = await getJson(`${admin}/readyz`);
        return res.status === 503 ? res : undefined;
      },
      { timeoutMs: 500, intervalMs: 10, what: 'readyz 503 right after SIGTERM' },
    );
    assert.match(String(readyz.body.detail), /lifecycle: shutting down \(SIGTERM\)/);

    // Within the drain delay the listener still accepts; after it, connections are refused.
    assert.equal(await connectionRefused(ingress), false, 'still accepting during the drain delay');
    await waitFor(() => connectionRefused(ingress), {
      timeoutMs: 2_000,
      what: 'ingress refusing connections',
    });
    assert.equal(app.inFlight(), 3, 'slow requests are still in flight when the listener closes');

    const answers = await Promise.all(slow);
    assert.deepEqual(
      answers,
      [1, 2, 3].map(() => ({ status: 200, body: { sleptMs: 2500 } })),
    );
    assert.equal(await sidecar.exited, 0);
    assert.ok(sidecar.logs.some((line) => line.msg === 'mesh-sidecar stopped'));
  });

  it('reloads a changed config on SIGHUP and keeps the old one when the new one is invalid', async () => {
    const initial = baseConfig(app.url);
    const sidecar = await start(initial);
    const admin = sidecar.urls.admin;

    await sidecar.rewriteConfig({
      ...initial,
      log: { level: 'debug' },
      shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
    });
    sidecar.proc.kill('SIGHUP');
    await waitFor(
      async () => (await metricValue(admin, 'mesh_config_reloads_total', 'result="success"')) === 1,
      {
        what: 'a successful reload counted',
      },
    );
    let effective = await getJson(`${admin}/config`);
    assert.deepEqual(effective.body.log, { level: 'debug' });
    assert.deepEqual(effective.body.shutdown, { drainDelayMs: 0, timeoutMs: 5_000 });

    await sidecar.rewriteConfig({ ...initial, log: { level: 'loud' }, extra: true });
    sidecar.proc.kill('SIGHUP');
    await waitFor(
      async () => (await metricValue(admin, 'mesh_config_reloads_total', 'result="failure"')) === 1,
      {
        what: 'a failed reload counted',
      },
    );
    const rejected = await sidecar.waitForLog(
      (line) => line.msg === 'config reload rejected; keeping the running config',
    );
    const problems = rejected.problems as string[];
    assert.equal(problems.length, 2, JSON.stringify(problems));
    assert.ok(problems.some((p) => p.startsWith('/extra: ')));
    assert.ok(problems.some((p) => p.startsWith('/log/level: ')));

    await sidecar.rewriteConfig({ ...initial, ingress: { ...initial.ingress, timeoutMs: 1 } });
    sidecar.proc.kill('SIGHUP');
    await waitFor(
      async () => (await metricValue(admin, 'mesh_config_reloads_total', 'result="failure"')) === 2,
      {
        what: 'a restart-only change rejected',
      },
    );
    effective = await getJson(`${admin}/config`);
    assert.deepEqual(effective.body.log, { level: 'debug' }, 'the last good config is still in force');
    assert.equal((effective.body.ingress as { timeoutMs: number }).timeoutMs, 10_000);
    assert.equal(await metricValue(admin, 'mesh_config_reloads_total', 'result="success"'), 1);
  });

  it('shuts down on POST /quitquitquit from loopback and exits 0', async () => {
    const sidecar = await start(baseConfig(app.url));
    const res = await request(`${sidecar.urls.admin}/quitquitquit`, { method: 'POST' });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(await sidecar.exited, 0);
  });
});

describe('mesh-sidecar CLI', function () {
  this.timeout(30_000);

  it('prints usage with --help and the version with --version', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /mesh-sidecar check-config FILE/);
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^mesh-sidecar \d+\.\d+\.\d+\n$/);
  });

  it('exits 2 on an unknown option or command', async () => {
    assert.equal((await runCli(['--bogus'])).code, 2);
    assert.equal((await runCli(['frobnicate'])).code, 2);
  });

  it('check-config prints one line per problem (unknown key, wrong type, bad port) and exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mesh-cli-'));
    try {
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, 'admin:\n  port: 70000\ningress:\n  timeoutMs: soon\n  colour: blue\n');
      const result = await runCli(['check-config', bad]);
      assert.equal(result.code, 2);
      const lines = result.stdout.trim().split('\n');
      assert.equal(lines.length, 3, result.stdout);
      assert.match(
        lines.find((l) => l.startsWith('/admin/port: '))!,
        /65535/,
      );
      assert.match(
        lines.find((l) => l.startsWith('/ingress/timeoutMs: '))!,
        /integer/,
      );
      assert.match(
        lines.find((l) => l.startsWith('/ingress/colour: '))!,
        /unknown key "colour"/,
      );

      const good = join(dir, 'good.json');
      await writeFile(good, '{"ingress": {"target": "http://127.0.0.1:9000"}}');
      assert.deepEqual(await runCli(['check-config', good]), { code: 0, stdout: 'ok\n', stderr: '' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('exits 2 and names the problem when the config file is invalid', async () => {
    const result = await runCli(['--config', '/nonexistent/mesh.yaml']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^\/: .+/m);
  });

  it('exits 1 when a listener cannot bind', async () => {
    const app = await startDemoBackend();
    const dir = await mkdtemp(join(tmpdir(), 'mesh-cli-'));
    try {
      const file = join(dir, 'c.json');
      await writeFile(
        file,
        JSON.stringify({ admin: { host: '127.0.0.1', port: app.port }, shutdown: { drainDelayMs: 0 } }),
      );
      const result = await runCli(['--config', file]);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /start-up failed/);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

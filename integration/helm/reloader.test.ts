/**
 * The chart's config watcher (helm/mesh-sidecar/files/reloader.mjs, the `config-reloader`
 * container of `sidecar.reloadOnChange`) against a real sidecar process: the pod's shared process
 * namespace is this machine's, the ConfigMap volume is the sidecar's temp config file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { chartDir } from '../../scripts/helm/chart.js';
import { startSidecarProcess } from '../helpers/sidecar-process.js';
import { CleanupStack, waitFor } from '../helpers/wait.js';

const initialConfig = {
  admin: { host: '127.0.0.1', port: 0 },
  ingress: { host: '127.0.0.1', port: 0 },
  shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
  log: { level: 'info' },
};

interface Watcher {
  logs: Record<string, unknown>[];
}

function startWatcher(configFile: string, match: string, cleanup: CleanupStack): Watcher {
  const proc = spawn(process.execPath, [join(chartDir, 'files/reloader.mjs')], {
    env: {
      ...process.env,
      MESH_CONFIG_FILE: configFile,
      MESH_SIDECAR_MATCH: match,
      MESH_RELOAD_INTERVAL_MS: '50',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  cleanup.defer(async () => {
    proc.kill('SIGTERM');
    await exited;
  });
  const watcher: Watcher = { logs: [] };
  let buffered = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) watcher.logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  return watcher;
}

async function effectiveLogLevel(adminUrl: string): Promise<unknown> {
  const res = await request(`${adminUrl}/config`);
  const body = (await res.body.json()) as { log?: { level?: unknown } };
  return body.log?.level;
}

describe('helm chart config watcher (reloadOnChange)', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('sends SIGHUP to the sidecar when the mounted config changes, and the sidecar applies it', async () => {
    const sidecar = await startSidecarProcess(initialConfig);
    cleanup.defer(() => sidecar.cleanup());
    // The temp config path is unique to this sidecar, so no other process matches.
    const watcher = startWatcher(sidecar.configFile, sidecar.configFile, cleanup);
    await waitFor(() => watcher.logs.some((l) => l.msg === 'watching the sidecar config'), {
      what: 'the watcher to start',
    });
    assert.equal(await effectiveLogLevel(sidecar.urls.admin), 'info');

    await sidecar.rewriteConfig({ ...initialConfig, log: { level: 'debug' } });
    const sent = await waitFor(() => watcher.logs.find((l) => l.msg === 'config changed; sent SIGHUP to the sidecar'), {
      what: 'the watcher to signal the sidecar',
    });
    assert.deepEqual(sent.pids, [sidecar.proc.pid]);
    await sidecar.waitForLog((line) => line.msg === 'config reloaded');
    assert.equal(await effectiveLogLevel(sidecar.urls.admin), 'debug');
    assert.equal(watcher.logs.filter((l) => l.msg === 'config changed; sent SIGHUP to the sidecar').length, 1);
  });

  it('signals nothing when no process matches, and keeps the change pending', async () => {
    const sidecar = await startSidecarProcess(initialConfig);
    cleanup.defer(() => sidecar.cleanup());
    // A SIGHUP to a wrong process could stop it: with no match, nothing is signalled.
    const watcher = startWatcher(sidecar.configFile, `${sidecar.configFile}.no-such-process`, cleanup);
    await waitFor(() => watcher.logs.some((l) => l.msg === 'watching the sidecar config'), {
      what: 'the watcher to start',
    });

    await sidecar.rewriteConfig({ ...initialConfig, log: { level: 'debug' } });
    await waitFor(
      () => watcher.logs.filter((l) => l.msg === 'config changed but no sidecar process found').length >= 2,
      { what: 'the watcher to report the pending change on two polls' },
    );
    assert.ok(!watcher.logs.some((l) => String(l.msg).includes('sent SIGHUP')));
    assert.equal(await effectiveLogLevel(sidecar.urls.admin), 'info');
  });
});

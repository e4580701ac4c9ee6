// Config watcher for `sidecar.reloadOnChange`: runs in its own container of the pod (which
// shares its process namespace), polls the mounted sidecar config, and when the content changes
// sends SIGHUP to the sidecar's process, which re-reads the file (see the README's Lifecycle).
//
// Kubelet updates a ConfigMap volume by swapping a symlink, so the file's content is compared,
// never its mtime. Polling a small file every few seconds costs nothing and works on every
// volume type, where inotify on a symlinked ConfigMap directory is fiddly.
//
// Environment: MESH_CONFIG_FILE (the mounted config.yaml), MESH_SIDECAR_MATCH (a string the
// sidecar's command line contains), MESH_RELOAD_INTERVAL_MS (poll period), PROC_ROOT (/proc).
// Logs are JSON lines on stdout like the sidecar's.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

const configFile = process.env.MESH_CONFIG_FILE || '/etc/mesh-sidecar/config/config.yaml';
const match = process.env.MESH_SIDECAR_MATCH || '/app/dist/services/sidecar/bin.js';
const intervalMs = Number(process.env.MESH_RELOAD_INTERVAL_MS || 5000);
const procRoot = process.env.PROC_ROOT || '/proc';

function log(level, msg, fields = {}) {
  process.stdout.write(
    `${JSON.stringify({ level, time: Date.now(), name: 'mesh-sidecar-reloader', msg, ...fields })}\n`,
  );
}

async function configHash() {
  return createHash('sha256')
    .update(await readFile(configFile))
    .digest('hex');
}

/** Process ids whose command line contains `match`, except this process. */
async function sidecarPids() {
  const pids = [];
  for (const entry of await readdir(procRoot)) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline;
    try {
      cmdline = (await readFile(join(procRoot, entry, 'cmdline'), 'utf8')).split('\0').join(' ');
    } catch {
      continue; // the process ended while we looked, or is not ours to read
    }
    if (cmdline.includes(match)) pids.push(Number(entry));
  }
  return pids;
}

let last;
try {
  last = await configHash();
} catch (err) {
  log('warn', 'cannot read the config yet', { file: configFile, err: String(err) });
}
log('info', 'watching the sidecar config', { file: configFile, match, intervalMs });

let timer;
async function poll() {
  try {
    const current = await configHash();
    if (current !== last) {
      const pids = await sidecarPids();
      if (pids.length === 0) {
        // Try again on the next poll: the sidecar may be restarting.
        log('warn', 'config changed but no sidecar process found', { match });
      } else {
        for (const pid of pids) process.kill(pid, 'SIGHUP');
        log('info', 'config changed; sent SIGHUP to the sidecar', { pids });
        last = current;
      }
    }
  } catch (err) {
    log('warn', 'config check failed', { err: String(err) });
  }
  timer = setTimeout(() => void poll(), intervalMs);
}
timer = setTimeout(() => void poll(), intervalMs);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    clearTimeout(timer);
    process.exit(0);
  });
}

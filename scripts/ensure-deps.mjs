// Installs the npm dependencies when they are missing or older than the lock file, so that
// `npm start` and `npm test` work on a fresh clone without a separate install step.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export function ensureDependencies() {
  const marker = join(repoRoot, 'node_modules', '.package-lock.json');
  const lock = join(repoRoot, 'package-lock.json');
  const fresh = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  process.stdout.write('Installing npm dependencies (npm ci)...\n');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: repoRoot, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write('npm ci failed\n');
    process.exit(result.status ?? 1);
  }
}

/** The Debian tools the status-page and Prometheus tests drive (installed when missing, as in CI). */
export function ensureTestTools() {
  const result = spawnSync('bash', [join(repoRoot, 'scripts', 'system', 'install-test-tools.sh')], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  // Not fatal here: without the tools only their tests fail, each with a clear message.
  if (result.status !== 0) process.stderr.write('continuing without chromium/prometheus\n');
}

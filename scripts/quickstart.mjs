// `npm start`: installs what is missing, then runs the quick start (scripts/quickstart.ts).
import { spawn } from 'node:child_process';
import { ensureDependencies, repoRoot } from './ensure-deps.mjs';

ensureDependencies();
const child = spawn(
  process.execPath,
  ['--import', 'tsx', 'scripts/quickstart.ts', ...process.argv.slice(2)],
  {
    cwd: repoRoot,
    stdio: 'inherit',
  },
);
// Ctrl-C reaches the whole foreground process group; the child does the orderly shutdown.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

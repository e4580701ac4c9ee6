// `npm test`: every test, unit and integration, against a real Kafka broker (see
// integration/helpers/kafka.ts for how the broker is chosen). Ends with "N passed, N failed".
import { spawn } from 'node:child_process';
import { ensureDependencies, ensureTestTools, repoRoot } from './ensure-deps.mjs';

ensureDependencies();
ensureTestTools();
const child = spawn(
  process.execPath,
  ['--import', 'tsx', 'node_modules/mocha/bin/mocha.js', ...process.argv.slice(2)],
  { cwd: repoRoot, stdio: 'inherit', env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' } },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

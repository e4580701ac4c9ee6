/**
 * The quick start: a local single-node Kafka, the demo backend on :8080 and the sidecar with
 * examples/quickstart.yaml. Prints what to curl; Ctrl-C (or SIGTERM) stops all three and exits 0.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoBackend, type DemoBackend } from '../services/demo-backend/server.js';
import { startLocalKafka, type LocalKafka } from './kafka/local-kafka.js';
import { freePort } from './lib/ports.js';
import { SIDECAR_NODE_FLAGS } from '../services/sidecar/node-flags.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const APP_PORT = 8080;
const KAFKA_PORT = 9092;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

let kafka: LocalKafka | undefined;
let backend: DemoBackend | undefined;
let sidecar: ReturnType<typeof spawn> | undefined;
let stopping: Promise<void> | undefined;

async function stopAll(): Promise<void> {
  if (sidecar && sidecar.exitCode === null) {
    const exited = new Promise((resolve) => sidecar!.once('exit', resolve));
    sidecar.kill('SIGTERM');
    await exited;
  }
  await backend?.close();
  await kafka?.stop();
}

function shutdown(signal: string): void {
  if (stopping) return;
  say(`\n${signal}: stopping the sidecar, the demo backend and Kafka...`);
  stopping = stopAll().then(
    () => {
      say('Stopped.');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`stop failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

try {
  const kafkaPort = await freePort(KAFKA_PORT);
  say(`Starting Kafka on 127.0.0.1:${kafkaPort} (first run fetches the broker jars with Maven)...`);
  kafka = await startLocalKafka({ port: kafkaPort });
  say(`Kafka ready at ${kafka.bootstrap} (log: ${kafka.logFile})`);

  backend = await startDemoBackend({ port: APP_PORT });
  say(`Demo backend on ${backend.url}`);

  sidecar = spawn(
    process.execPath,
    [
      ...SIDECAR_NODE_FLAGS,
      '--import',
      'tsx',
      join(repoRoot, 'services/sidecar/bin.ts'),
      '--config',
      join(repoRoot, 'examples/quickstart.yaml'),
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, APP_URL: backend.url, KAFKA_BOOTSTRAP: kafka.bootstrap },
      stdio: ['ignore', 'pipe', 'inherit'],
      // Its own process group: Ctrl-C reaches only this script, which then drains the sidecar once.
      detached: true,
    },
  );
  const sidecarProcess = sidecar;
  process.once('exit', () => {
    if (sidecarProcess.exitCode === null) sidecarProcess.kill('SIGKILL');
  });
  sidecarProcess.on('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`the sidecar exited (code ${String(code)}); stopping the rest\n`);
      shutdown('sidecar exit');
    }
  });
  const started = await new Promise<Record<string, string>>((resolve, reject) => {
    let buffered = '';
    sidecarProcess.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      process.stdout.write(chunk);
      buffered += chunk;
      for (const line of buffered.split('\n')) {
        if (!line.includes('"mesh-sidecar started"')) continue;
        const { listeners } = JSON.parse(line) as { listeners: Record<string, string> };
        // A wildcard bind is reached as localhost from this machine.
        resolve(
          Object.fromEntries(
            Object.entries(listeners).map(([name, url]) => [
              name,
              url.replace('://0.0.0.0:', '://localhost:'),
            ]),
          ),
        );
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    sidecarProcess.once('exit', (code) =>
      reject(new Error(`sidecar exited with ${String(code)} during start-up`)),
    );
  });

  say(`
mesh-sidecar is running. Open the live status page at ${started.admin}/ in a browser, or try:

  curl -s ${started.admin}/readyz                # 200 when the sidecar and the app are ready
  curl -s ${started.ingress}/hello               # through the ingress proxy to the demo backend
  curl -s -X POST ${started.ingress}/echo -H 'content-type: application/json' -d '{"hi":1}'
  curl -s -i ${started.ingress}/slow?ms=200      # x-request-id and timing through the proxy
  curl -s -X POST ${started.bridge}/topics/demo-events -H 'content-type: application/vnd.kafka.json.v2+json' \\
       -d '{"records":[{"key":"order-1","value":{"id":1,"total":9.5}}]}'   # produce: answers partition and offset
  curl -s ${started.bridge}/topics/demo-events/partitions/0/offsets          # the record is there
  curl -s ${started.admin}/metrics | grep mesh_  # RED metrics
  curl -s ${started.admin}/config                # effective config, secrets redacted

Kafka is at ${kafka.bootstrap}. Press Ctrl-C to stop everything.
`);
} catch (err) {
  process.stderr.write(`quick start failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll().catch(() => undefined);
  process.exit(1);
}

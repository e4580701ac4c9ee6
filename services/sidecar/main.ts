import { parseArgs } from 'node:util';
import {
  ConfigError,
  formatProblems,
  loadConfig,
  zeroConfigMode,
  zeroConfigUpstream,
  type Config,
} from '../runtime/config.js';
import { createLogger, type Logger } from '../runtime/logging.js';
import { packageVersion } from '../runtime/package-files.js';
import { createMetrics } from '../runtime/metrics.js';
import { RecentErrors } from '../runtime/recent-errors.js';
import { startTelemetry } from '../runtime/telemetry.js';
import { checkConfig } from './check-config.js';
import { runConvertLightmesh } from './convert-lightmesh.js';
import { Sidecar } from './sidecar.js';
import { formatStatusText } from './status/format-text.js';
import type { SidecarStatus } from './status/snapshot.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME_ERROR = 1;
export const EXIT_USAGE = 2;

const USAGE = `Usage:
  mesh-sidecar [--config FILE]        run the sidecar (MESH_CONFIG=FILE does the same as --config)
  mesh-sidecar check-config FILE      validate FILE: prints "ok", or one "<json-pointer>: <message>" per problem and exits 2
  mesh-sidecar convert-lightmesh-config DIR
                                      print the mesh-sidecar config equivalent to the light-mesh Kafka sidecar's
                                      kafka-producer.yml / kafka-consumer.yml / values.yml in DIR (warnings on stderr)
  mesh-sidecar status [--admin URL] [--json]
                                      print a running sidecar's status (GET URL/status; default http://127.0.0.1:15000)
  mesh-sidecar --help | --version

Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the config file.
Exit codes: 0 clean shutdown, 1 fatal runtime error, 2 bad usage or bad config.`;

/** Parses the command line and runs it; resolves with the process exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        admin: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  if (values.version) {
    process.stdout.write(`mesh-sidecar ${packageVersion()}\n`);
    return EXIT_OK;
  }
  if (positionals[0] === 'check-config') {
    const file = positionals[1] ?? values.config;
    if (!file || positionals.length > 2) {
      process.stderr.write(`check-config needs exactly one FILE\n\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    return checkConfig(file, env, (line) => process.stdout.write(`${line}\n`));
  }
  if (positionals[0] === 'status' && positionals.length === 1) {
    return printStatus(values.admin ?? env.MESH_ADMIN_URL ?? 'http://127.0.0.1:15000', values.json === true);
  }
  if (positionals[0] !== 'status' && (values.admin !== undefined || values.json !== undefined)) {
    process.stderr.write(`--admin and --json belong to the status command\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (positionals[0] === 'convert-lightmesh-config') {
    if (positionals.length !== 2) {
      process.stderr.write(`convert-lightmesh-config needs exactly one DIR\n\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    return runConvertLightmesh(
      positionals[1],
      (text) => process.stdout.write(text),
      (line) => process.stderr.write(`${line}\n`),
    );
  }
  if (positionals.length > 0) {
    process.stderr.write(`unknown command "${positionals[0]}"\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  return run(values.config ?? env.MESH_CONFIG, env);
}

async function run(configFile: string | undefined, env: NodeJS.ProcessEnv): Promise<number> {
  let config: Config;
  try {
    config = await loadConfig({ file: configFile, env });
    // Zero-config mode: no file and UPSTREAM_URL set runs admin + egress only (contract section 1).
    const upstreamUrl = zeroConfigUpstream(env);
    if (configFile === undefined && upstreamUrl !== undefined) config = zeroConfigMode(config, upstreamUrl);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of formatProblems(err.problems)) process.stderr.write(`${line}\n`);
    return EXIT_USAGE;
  }
  // Warnings and errors are also kept for the status page (GET /status).
  const recentErrors = new RecentErrors();
  const logger = createLogger({ level: config.log.level, destination: recentErrors.tee() });
  const telemetry = startTelemetry({ serviceName: config.telemetry.serviceName, env });
  const sidecar = new Sidecar({
    config,
    configFile,
    env,
    logger,
    metrics: createMetrics(),
    telemetry,
    recentErrors,
  });

  const exitCode = new Promise<number>((resolve) => {
    const fatal = (kind: string) => (err: unknown) => {
      logger.fatal({ err }, `${kind}: exiting`);
      resolve(EXIT_RUNTIME_ERROR);
    };
    process.once('uncaughtException', fatal('uncaught exception'));
    process.once('unhandledRejection', fatal('unhandled rejection'));
    const graceful = (signal: string) => {
      if (sidecar.isShuttingDown) {
        logger.warn({ signal }, 'second signal while shutting down: exiting now');
        resolve(EXIT_RUNTIME_ERROR);
        return;
      }
      sidecar.shutdown(signal).catch(fatal('shutdown failed'));
    };
    process.on('SIGTERM', () => graceful('SIGTERM'));
    process.on('SIGINT', () => graceful('SIGINT'));
    process.on('SIGHUP', () => void sidecar.reload());
    // Signals and POST /quitquitquit end up here alike.
    void sidecar.stopped.then(() => resolve(EXIT_OK));
  });

  try {
    await sidecar.start();
  } catch (err) {
    logger.fatal({ err }, 'start-up failed');
    await sidecar.shutdown('start-up failed').catch(() => undefined);
    await flushLogger(logger);
    return EXIT_RUNTIME_ERROR;
  }
  const code = await exitCode;
  await flushLogger(logger);
  return code;
}

/** `mesh-sidecar status`: fetches `GET /status` of a running sidecar's admin listener and prints it. */
async function printStatus(adminUrl: string, json: boolean): Promise<number> {
  let status: SidecarStatus;
  try {
    const url = new URL('status', adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
    const res = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`GET ${url.href} answered ${res.status}`);
    status = (await res.json()) as SidecarStatus;
  } catch (err) {
    process.stderr.write(`cannot read the status from ${adminUrl}: ${(err as Error).message}\n`);
    return EXIT_RUNTIME_ERROR;
  }
  process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatusText(status));
  return EXIT_OK;
}

function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

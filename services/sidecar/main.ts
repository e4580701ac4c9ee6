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
import { startTelemetry } from '../runtime/telemetry.js';
import { checkConfig } from './check-config.js';
import { Sidecar } from './sidecar.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME_ERROR = 1;
export const EXIT_USAGE = 2;

const USAGE = `Usage:
  mesh-sidecar [--config FILE]        run the sidecar (MESH_CONFIG=FILE does the same as --config)
  mesh-sidecar check-config FILE      validate FILE: prints "ok", or one "<json-pointer>: <message>" per problem and exits 2
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
  const logger = createLogger({ level: config.log.level });
  const telemetry = startTelemetry({ serviceName: config.telemetry.serviceName, env });
  const sidecar = new Sidecar({ config, configFile, env, logger, metrics: createMetrics(), telemetry });

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

function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

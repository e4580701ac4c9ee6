/**
 * A real, single-node Apache Kafka (KRaft, combined broker+controller) run straight from the
 * jars that fetch.sh puts in .cache/kafka/<version>/libs: no Docker, no Kafka distribution.
 *
 * Library: `startLocalKafka()` for integration tests (the broker dies with the Node process).
 * CLI:     `tsx scripts/kafka/local-kafka.ts start|stop|status [--port N]` for the quick start
 *          (the broker is detached and found again through .cache/kafka/run/kafka-<port>.pid).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

export interface LocalKafka {
  /** `127.0.0.1:<port>`, ready for kafkajs' `brokers` option. */
  bootstrap: string;
  port: number;
  controllerPort: number;
  dataDir: string;
  /** Broker log (log4j output plus the JVM's stdout/stderr). */
  logFile: string;
  pid: number;
  /** SIGTERM, then SIGKILL if the broker has not exited in time. Idempotent. */
  stop(): Promise<void>;
}

export interface StartLocalKafkaOptions {
  /** Client port; 0 or omitted picks a free one. */
  port?: number;
  /** KRaft controller port; 0 or omitted picks a free one. */
  controllerPort?: number;
  /** Kept across runs if given (an already formatted dir is reused); otherwise a temp dir removed by stop(). */
  dataDir?: string;
  /** Defaults to `<dataDir>/server.log`. */
  logFile?: string;
  /** How long the broker may take to serve a create-topic + produce round trip. Default 60 s. */
  readyTimeoutMs?: number;
  /**
   * Let the broker outlive this process (CLI use). A non-detached broker is killed when this
   * process exits, even if stop() is never called.
   */
  detached?: boolean;
}

const HOST = '127.0.0.1';
const READY_PROBE_TOPIC = 'local-kafka-ready-probe';
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 20_000;
const KILL_WAIT_MS = 5_000;
const LOG_TAIL_LINES = 60;

const kafkaScriptsDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(kafkaScriptsDir, '..', '..');
const pomFile = join(kafkaScriptsDir, 'pom.xml');
const fetchScript = join(kafkaScriptsDir, 'fetch.sh');

/** The broker version pinned in pom.xml (the single source of truth, shared with fetch.sh). */
export function kafkaVersion(): string {
  const pom = readFileSync(pomFile, 'utf8');
  const match = /<kafka\.version>\s*([^<\s]+)\s*<\/kafka\.version>/.exec(pom);
  if (!match?.[1]) throw new Error(`could not read <kafka.version> from ${pomFile}`);
  return match[1];
}

/** Where fetch.sh puts the jars for the pinned version. */
export function kafkaLibsDir(version = kafkaVersion()): string {
  return join(repoRoot, '.cache', 'kafka', version, 'libs');
}

/** Directory holding the CLI's pid files. */
const runDir = join(repoRoot, '.cache', 'kafka', 'run');

let jarsFetch: Promise<string> | undefined;

/** Returns the libs dir, running fetch.sh (Maven) first if the broker jar is missing. */
export async function ensureKafkaJars(): Promise<string> {
  const version = kafkaVersion();
  const libsDir = kafkaLibsDir(version);
  if (existsSync(join(libsDir, `kafka_2.13-${version}.jar`))) return libsDir;
  // One Maven run per process even if several tests ask at once.
  jarsFetch ??= runFetchScript().finally(() => {
    jarsFetch = undefined;
  });
  return jarsFetch;
}

async function runFetchScript(): Promise<string> {
  const fetch = spawn('bash', [fetchScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  fetch.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const exitCode = await new Promise<number | null>((resolveExit, rejectExit) => {
    fetch.once('error', rejectExit);
    fetch.once('close', resolveExit);
  });
  if (exitCode !== 0) throw new Error(`${fetchScript} failed with exit code ${String(exitCode)}`);
  const libsDir = stdout.trim().split('\n').at(-1);
  if (!libsDir) throw new Error(`${fetchScript} did not print the libs directory`);
  return libsDir;
}

/** Binds 127.0.0.1:<port> (0 = any free port) and returns the open server and its port. */
async function listenOnLoopback(port: number): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen({ host: HOST, port, exclusive: true }, resolveListen);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('unexpected server address');
  return { server, port: address.port };
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
}

/**
 * Resolves each requested port: 0 becomes a free port, a fixed port is checked to be free so
 * the caller gets a clear error instead of a broker that dies with BindException. All servers
 * stay open until every port is known, so two free picks can never be the same port.
 */
export async function reservePorts(requested: number[]): Promise<number[]> {
  const held: Server[] = [];
  try {
    const ports: number[] = [];
    for (const port of requested) {
      try {
        const reserved = await listenOnLoopback(port);
        held.push(reserved.server);
        ports.push(reserved.port);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          throw new Error(`port ${port} on ${HOST} is already in use`);
        }
        throw error;
      }
    }
    return ports;
  } finally {
    await Promise.all(held.map(closeServer));
  }
}

/** Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars). */
export function randomClusterId(): string {
  return randomBytes(16).toString('base64url');
}

/** Java .properties values treat backslashes as escapes (matters for Windows paths). */
export function propertyValue(value: string): string {
  return value.replaceAll('\\', '\\\\');
}

export type KafkaProperties = Record<string, string | number | boolean>;

/** `key=value` lines of a server.properties file. */
export function propertiesText(settings: KafkaProperties): string {
  return (
    Object.entries(settings)
      .map(([key, value]) => `${key}=${String(value)}`)
      .join('\n') + '\n'
  );
}

/** What every local node shares: small thread pools, fast group joins, explicit topics only. */
export const COMMON_NODE_SETTINGS: KafkaProperties = {
  'group.initial.rebalance.delay.ms': 0,
  'auto.create.topics.enable': false,
  'delete.topic.enable': true,
  'num.network.threads': 2,
  'num.io.threads': 2,
  'background.threads': 2,
  'num.recovery.threads.per.data.dir': 1,
  'log.cleaner.threads': 1,
  'log.cleaner.dedupe.buffer.size': 8 * 1024 * 1024,
  'broker.heartbeat.interval.ms': 500,
  'broker.session.timeout.ms': 9000,
};

function serverProperties(port: number, controllerPort: number, logDirs: string): KafkaProperties {
  const settings: KafkaProperties = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@${HOST}:${controllerPort}`,
    listeners: `PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${HOST}:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': propertyValue(logDirs),
    // Single node: every internal topic must make do with one replica.
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'min.insync.replicas': 1,
    // One partition instead of 50 makes the first consumer group / transaction start instantly.
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.num.partitions': 1,
    // Consumers join without the 3 s wait for more members.
    'group.initial.rebalance.delay.ms': 0,
    // Tests must create their topics explicitly, as in production.
    'auto.create.topics.enable': false,
    'delete.topic.enable': true,
    'num.partitions': 1,
    'default.replication.factor': 1,
    // Small footprint: few threads, no 128 MB log-cleaner buffer.
    'num.network.threads': 2,
    'num.io.threads': 2,
    'background.threads': 2,
    'num.recovery.threads.per.data.dir': 1,
    'log.cleaner.threads': 1,
    'log.cleaner.dedupe.buffer.size': 8 * 1024 * 1024,
    // The broker learns sooner that the controller unfenced it, shaving startup time.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 9000,
  };
  return settings;
}

function log4jProperties(logFile: string): string {
  return [
    'log4j.rootLogger=INFO, file',
    'log4j.appender.file=org.apache.log4j.FileAppender',
    `log4j.appender.file.File=${propertyValue(logFile)}`,
    'log4j.appender.file.Append=true',
    'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
    // Per-request, per-partition-state and config dump chatter: only problems are interesting.
    'log4j.logger.kafka.request.logger=WARN',
    'log4j.logger.state.change.logger=WARN',
    'log4j.logger.kafka.log.LogCleaner=WARN',
    'log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN',
    'log4j.logger.kafka.server.KafkaConfig=WARN',
    'log4j.logger.org.apache.kafka.clients=WARN',
    'log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN',
    '',
  ].join('\n');
}

function javaExecutable(): string {
  const javaHome = process.env['JAVA_HOME'];
  return javaHome ? join(javaHome, 'bin', 'java') : 'java';
}

/** Startup speed and a small heap matter more here than peak throughput. */
function jvmOptions(log4jFile: string, dataDir: string, maxHeap: string): string[] {
  return [
    '-Xms64m',
    `-Xmx${maxHeap}`,
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:+ExitOnOutOfMemoryError',
    '-XX:-UsePerfData',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=${pathToFileURL(log4jFile).href}`,
    `-Dkafka.logs.dir=${dataDir}`,
  ];
}

export async function tailOfFile(file: string, lines = LOG_TAIL_LINES): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

async function formatStorage(
  libsDir: string,
  dataDir: string,
  propertiesFile: string,
  log4jFile: string,
  clusterId = randomClusterId(),
  extraArgs: readonly string[] = [],
) {
  const args = [
    ...jvmOptions(log4jFile, dataDir, '256m'),
    '-cp',
    join(libsDir, '*'),
    'kafka.tools.StorageTool',
    'format',
    // One argument: a URL-safe base64 id may start with '-', which would read as an option.
    `--cluster-id=${clusterId}`,
    '--config',
    propertiesFile,
    ...extraArgs,
  ];
  const format = spawn(javaExecutable(), args, { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  format.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  format.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exitCode = await new Promise<number | null>((resolveExit, rejectExit) => {
    format.once('error', rejectExit);
    format.once('close', resolveExit);
  });
  if (exitCode !== 0) {
    throw new Error(`kafka-storage format failed (exit ${String(exitCode)}):\n${output.trim()}`);
  }
}

/**
 * Two layers make sure an owned broker never outlives this process:
 *  - an 'exit' hook kills it synchronously on every orderly exit (including mocha finishing
 *    without a teardown, since the broker is unref'ed and does not keep the loop alive);
 *  - a watchdog shell polls this process once a second and SIGKILLs the broker (and removes a
 *    temp data dir) when this process is gone, which covers SIGTERM/SIGINT with default
 *    handling, SIGKILL and crashes, where no JavaScript runs at all.
 * Signal listeners are deliberately not used: adding one turns off Node's default "terminate"
 * and then fights other libraries' listeners (signal-exit, mocha) over who re-raises.
 */
interface OwnedBroker {
  child: ChildProcess;
  watchdog: ChildProcess;
  dataDirToRemove: string | undefined;
}
const ownedBrokers = new Map<number, OwnedBroker>();

const WATCHDOG_SCRIPT = `
parent=$1 broker=$2 data_dir=$3
while kill -0 "$broker" 2>/dev/null; do
  if ! kill -0 "$parent" 2>/dev/null; then
    kill -9 "$broker" 2>/dev/null
    if [ -n "$data_dir" ]; then sleep 1; rm -rf -- "$data_dir"; fi
    exit 0
  fi
  sleep 1
done
`;

function spawnWatchdog(brokerPid: number, dataDirToRemove: string | undefined): ChildProcess {
  const watchdog = spawn(
    'sh',
    [
      '-c',
      WATCHDOG_SCRIPT,
      'local-kafka-watchdog',
      String(process.pid),
      String(brokerPid),
      dataDirToRemove ?? '',
    ],
    // Own process group: a Ctrl-C aimed at the test run must not kill the watchdog first.
    { stdio: 'ignore', detached: true },
  );
  watchdog.on('error', () => {}); // Without sh the 'exit' hook still covers orderly exits.
  watchdog.unref();
  return watchdog;
}

function killQuietly(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function killOwnedBrokersNow(): void {
  for (const [pid, broker] of ownedBrokers) {
    killQuietly(broker.watchdog.pid, 'SIGKILL');
    killQuietly(pid, 'SIGKILL');
    if (broker.dataDirToRemove) rmSync(broker.dataDirToRemove, { recursive: true, force: true });
  }
  ownedBrokers.clear();
  process.off('exit', killOwnedBrokersNow);
}

function own(pid: number, broker: OwnedBroker): void {
  if (ownedBrokers.size === 0) process.on('exit', killOwnedBrokersNow);
  ownedBrokers.set(pid, broker);
}

function disown(pid: number): void {
  const broker = ownedBrokers.get(pid);
  if (!broker) return;
  killQuietly(broker.watchdog.pid, 'SIGKILL');
  ownedBrokers.delete(pid);
  if (ownedBrokers.size === 0) process.off('exit', killOwnedBrokersNow);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls until `pid` is gone (for processes that are not our children). */
async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await delay(100);
  }
  return true;
}

/** Terminates a broker by pid: SIGTERM, grace period, SIGKILL. Works for non-children too. */
export async function stopKafkaProcess(pid: number, graceMs = STOP_GRACE_MS): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  if (await waitForPidExit(pid, graceMs)) return;
  process.kill(pid, 'SIGKILL');
  if (!(await waitForPidExit(pid, KILL_WAIT_MS))) throw new Error(`broker pid ${pid} survived SIGKILL`);
}

function waitForChildExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    // This timer also keeps the event loop alive while we wait on the unref'ed child.
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolveExit(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolveExit(true);
    };
    child.once('exit', onExit);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitForChildExit(child, STOP_GRACE_MS)) return;
  child.kill('SIGKILL');
  if (!(await waitForChildExit(child, KILL_WAIT_MS))) {
    throw new Error(`broker pid ${String(child.pid)} survived SIGKILL`);
  }
}

/** One real round trip: create (or find) the probe topic and produce a record to it. */
export async function probeBroker(bootstrap: string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'local-kafka-ready-probe',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 500 },
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic: READY_PROBE_TOPIC, numPartitions: 1 }],
      waitForLeaders: true,
      timeout: 5_000,
    });
    await producer.connect();
    await producer.send({ topic: READY_PROBE_TOPIC, acks: -1, messages: [{ value: 'ready?' }] });
  } finally {
    await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
  }
}

export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export interface RunningNode {
  readonly child: ChildProcess;
  readonly logFile: string;
}

/** Probes `bootstrap` until it serves a create-topic + produce round trip; fails early if a node died. */
export async function waitUntilReady(
  bootstrap: string,
  nodes: RunningNode | readonly RunningNode[],
  timeoutMs: number,
  probe: (bootstrap: string) => Promise<void> = probeBroker,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const all = Array.isArray(nodes) ? (nodes as readonly RunningNode[]) : [nodes as RunningNode];
  let lastError: unknown;
  for (;;) {
    for (const { child, logFile } of all) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const how = child.signalCode ?? `code ${String(child.exitCode)}`;
        throw new Error(
          `Kafka broker exited (${how}) before it was ready. Log tail (${logFile}):\n` +
            (await tailOfFile(logFile)),
        );
      }
    }
    try {
      await probe(bootstrap);
      return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const tails = await Promise.all(all.map(({ logFile }) => tailOfFile(logFile, 30)));
      throw new Error(
        `Kafka at ${bootstrap} not ready after ${timeoutMs} ms (last probe error: ` +
          `${describeError(lastError)}). Log tail (${all.map((n) => n.logFile).join(', ')}):\n${tails.join('\n---\n')}`,
      );
    }
    await delay(200);
  }
}

export interface LaunchKafkaNodeOptions {
  /** The node's directory: server.properties, log4j.properties and (unless `logDirs` is set) its data. */
  readonly dataDir: string;
  /** Full server.properties content (`log.dirs` included). */
  readonly properties: KafkaProperties;
  /** Defaults to `<dataDir>/server.log`. */
  readonly logFile?: string;
  /** Cluster id for formatting; nodes of one cluster share it. Default: a random one. */
  readonly clusterId?: string;
  /** More `kafka-storage format` arguments (e.g. `--add-scram ...`). */
  readonly formatArgs?: readonly string[];
  readonly maxHeap?: string;
  /** Let the broker outlive this process (CLI use). */
  readonly detached?: boolean;
  /** Removed by stop(), and by the watchdog if this process dies (temp dirs). */
  readonly removeOnStop?: string;
}

export interface KafkaNodeProcess extends RunningNode {
  readonly pid: number;
  /** SIGTERM, then SIGKILL after the grace period. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now and wait for the exit (a crash, for failover tests). Keeps the data dir. */
  kill(): Promise<void>;
  /** Releases the exit hook and watchdog, so a detached broker lives on. */
  disown(): void;
}

/**
 * Writes the node's config, formats its storage if it has none yet, and spawns `kafka.Kafka`
 * (owned by this process: killed when it exits, see `own`). Does not wait for readiness.
 */
export async function launchKafkaNode(options: LaunchKafkaNodeOptions): Promise<KafkaNodeProcess> {
  const libsDir = await ensureKafkaJars();
  const { dataDir } = options;
  const logFile = resolve(options.logFile ?? join(dataDir, 'server.log'));
  await mkdir(dataDir, { recursive: true });
  await mkdir(dirname(logFile), { recursive: true });
  const propertiesFile = join(dataDir, 'server.properties');
  const log4jFile = join(dataDir, 'log4j.properties');
  const logDirs = String(options.properties['log.dirs']);
  // Regenerated on every start: ports may differ between runs of a persistent --dir.
  await writeFile(propertiesFile, propertiesText(options.properties));
  await writeFile(log4jFile, log4jProperties(logFile));
  // A reused dir keeps its cluster id and data; re-formatting it would be refused anyway.
  if (!existsSync(join(logDirs, 'meta.properties'))) {
    await formatStorage(libsDir, dataDir, propertiesFile, log4jFile, options.clusterId, options.formatArgs);
  }

  // A file, not a pipe, for stdout/stderr: nothing in this process has to drain it, and the
  // broker keeps a valid stdout after a detached start's parent has exited.
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      javaExecutable(),
      [
        ...jvmOptions(log4jFile, dataDir, options.maxHeap ?? '512m'),
        '-cp',
        join(libsDir, '*'),
        'kafka.Kafka',
        propertiesFile,
      ],
      { cwd: dataDir, stdio: ['ignore', logFd, logFd], detached: options.detached ?? false },
    );
  } finally {
    closeSync(logFd);
  }

  const spawnError = new Promise<never>((_, rejectSpawn) => child.once('error', rejectSpawn));
  const pid = await Promise.race([
    spawnError,
    new Promise<number>((resolveSpawn) => child.once('spawn', () => resolveSpawn(child.pid as number))),
  ]).catch((error: unknown) => {
    throw new Error(`could not start ${javaExecutable()}: ${describeError(error)}`);
  });
  spawnError.catch(() => {}); // Only relevant before 'spawn'.
  // After 'spawn', 'error' only reports a failed kill(); stop() notices the broker is still
  // alive by itself, and an 'error' without a listener would crash this process instead.
  child.on('error', () => {});
  // Never let the broker alone keep a test run or the CLI alive: stop() or the exit hook ends it.
  child.unref();
  // Even a detached broker is owned until it is ready, so Ctrl-C during startup cannot orphan it.
  own(pid, {
    child,
    watchdog: spawnWatchdog(pid, options.removeOnStop),
    dataDirToRemove: options.removeOnStop,
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await stopChild(child);
      } finally {
        disown(pid);
      }
      if (options.removeOnStop) await rm(options.removeOnStop, { recursive: true, force: true });
    })();
    return stopping;
  };
  const kill = async (): Promise<void> => {
    try {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        if (!(await waitForChildExit(child, KILL_WAIT_MS)))
          throw new Error(`broker pid ${pid} survived SIGKILL`);
      }
    } finally {
      disown(pid);
    }
  };
  return { pid, child, logFile, stop, kill, disown: () => disown(pid) };
}

/** Formats storage if needed, spawns `kafka.Kafka` and resolves once it serves produce requests. */
export async function startLocalKafka(options: StartLocalKafkaOptions = {}): Promise<LocalKafka> {
  const [port, controllerPort] = await reservePorts([options.port ?? 0, options.controllerPort ?? 0]);
  if (port === undefined || controllerPort === undefined) throw new Error('port reservation failed');

  const ownsDataDir = options.dataDir === undefined;
  const dataDir = ownsDataDir
    ? await mkdtemp(join(tmpdir(), 'mesh-sidecar-kafka-'))
    : resolve(options.dataDir as string);
  let node: KafkaNodeProcess;
  try {
    const logDirs = join(dataDir, 'kraft-logs');
    node = await launchKafkaNode({
      dataDir,
      properties: serverProperties(port, controllerPort, logDirs),
      ...(options.logFile === undefined ? {} : { logFile: options.logFile }),
      ...(options.detached === undefined ? {} : { detached: options.detached }),
      ...(ownsDataDir ? { removeOnStop: dataDir } : {}),
    });
  } catch (error) {
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }

  const bootstrap = `${HOST}:${port}`;
  try {
    await waitUntilReady(bootstrap, node, options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  } catch (error) {
    await node.stop().catch(() => {});
    throw error;
  }
  if (options.detached) node.disown();

  return {
    bootstrap,
    port,
    controllerPort,
    dataDir,
    logFile: node.logFile,
    pid: node.pid,
    stop: () => node.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

const DEFAULT_CLI_PORT = 9092;

function pidFileFor(port: number): string {
  return join(runDir, `kafka-${port}.pid`);
}

/** Guards against pid reuse: only a JVM running kafka.Kafka counts as "our broker". */
async function isKafkaBroker(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  try {
    const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return commandLine.split('\0').includes('kafka.Kafka');
  } catch {
    // No procfs (macOS): ask ps.
    const ps = spawn('ps', ['-p', String(pid), '-o', 'args='], { stdio: ['ignore', 'pipe', 'ignore'] });
    let args = '';
    ps.stdout.setEncoding('utf8').on('data', (chunk: string) => (args += chunk));
    await new Promise((resolveClose) => ps.once('close', resolveClose));
    return /\bkafka\.Kafka\b/.test(args);
  }
}

/** The pid recorded for `port` if that process is still a running broker; clears stale files. */
async function runningBrokerPid(port: number): Promise<number | undefined> {
  const pidFile = pidFileFor(port);
  let pid: number;
  try {
    pid = Number.parseInt(await readFile(pidFile, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (Number.isInteger(pid) && pid > 0 && (await isKafkaBroker(pid))) return pid;
  await unlink(pidFile).catch(() => {});
  return undefined;
}

async function cliStart(port: number, controllerPort: number, dataDir: string, readyTimeoutMs: number) {
  const runningPid = await runningBrokerPid(port);
  if (runningPid !== undefined) {
    console.error(`Kafka already running at ${HOST}:${port} (pid ${runningPid}).`);
    console.log(`${HOST}:${port}`);
    return;
  }
  await mkdir(runDir, { recursive: true });
  // Exclusive create: a second concurrent `start` for the same port fails here, not in Kafka.
  const pidFile = pidFileFor(port);
  const pidHandle = await open(pidFile, 'wx').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    throw new Error(`another start for port ${port} is in progress (${pidFile} exists)`);
  });
  const startedAt = Date.now();
  let broker: LocalKafka;
  try {
    broker = await startLocalKafka({ port, controllerPort, dataDir, readyTimeoutMs, detached: true });
    await pidHandle.writeFile(`${broker.pid}\n`);
  } catch (error) {
    await pidHandle.close();
    await unlink(pidFile).catch(() => {});
    throw error;
  }
  await pidHandle.close();
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  console.error(
    `Kafka ${kafkaVersion()} ready at ${broker.bootstrap} in ${seconds} s ` +
      `(pid ${broker.pid}, data ${broker.dataDir}, log ${broker.logFile}).`,
  );
  console.log(broker.bootstrap);
}

async function cliStop(port: number) {
  const pid = await runningBrokerPid(port);
  if (pid === undefined) {
    console.error(`No local Kafka running on port ${port}.`);
    return;
  }
  await stopKafkaProcess(pid);
  await unlink(pidFileFor(port)).catch(() => {});
  console.error(`Stopped Kafka on port ${port} (pid ${pid}).`);
}

async function cliStatus(port: number): Promise<number> {
  const pid = await runningBrokerPid(port);
  if (pid === undefined) {
    console.log(`not running (port ${port})`);
    return 1;
  }
  try {
    await probeBroker(`${HOST}:${port}`);
    console.log(`running at ${HOST}:${port} (pid ${pid})`);
    return 0;
  } catch (error) {
    console.log(`process ${pid} is up but ${HOST}:${port} does not serve requests: ${describeError(error)}`);
    return 2;
  }
}

const usage = `Usage: tsx scripts/kafka/local-kafka.ts <command> [options]

Commands:
  start    start a detached broker (no-op if one already runs on the port); prints the bootstrap
  stop     stop the broker started for the port
  status   exit 0 if the broker for the port serves requests, 1 if not running, 2 if unhealthy

Options:
  --port N              client port (default ${DEFAULT_CLI_PORT})
  --controller-port N   KRaft controller port (start only; default: any free port)
  --dir D               data dir, kept across restarts (start only; default .cache/kafka/data/<port>)
  --timeout S           seconds to wait for readiness (start only; default 60)
`;

function parsePort(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid ${name}: ${value}`);
  return port;
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      'controller-port': { type: 'string' },
      dir: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...extra] = positionals;
  if (values.help || command === undefined || extra.length > 0) {
    (values.help ? console.log : console.error)(usage);
    return values.help ? 0 : 64;
  }
  const port = parsePort(values.port, DEFAULT_CLI_PORT, '--port');
  switch (command) {
    case 'start': {
      // Nobody connects to the controller port from outside, so any free one will do.
      const controllerPort = parsePort(values['controller-port'], 0, '--controller-port');
      const dataDir = resolve(values.dir ?? join(repoRoot, '.cache', 'kafka', 'data', String(port)));
      const timeoutSeconds = values.timeout === undefined ? 60 : Number(values.timeout);
      if (!(timeoutSeconds > 0)) throw new Error(`invalid --timeout: ${values.timeout}`);
      await cliStart(port, controllerPort, dataDir, timeoutSeconds * 1000);
      return 0;
    }
    case 'stop':
      await cliStop(port);
      return 0;
    case 'status':
      return cliStatus(port);
    default:
      console.error(`unknown command "${command}"\n\n${usage}`);
      return 64;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (exitCode) => {
      process.exitCode = exitCode;
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}

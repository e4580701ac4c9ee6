import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Component } from '../runtime/component.js';
import { ConfigError, loadConfig, redactConfig, zeroConfigUpstream, type Config } from '../runtime/config.js';
import type { Logger } from '../runtime/logging.js';
import type { MeshMetrics } from '../runtime/metrics.js';
import type { Telemetry } from '../runtime/telemetry.js';
import { IngressComponent } from '../../proxy/ingress/ingress.js';
import { EgressComponent, egressWanted } from '../../proxy/egress/egress.js';
import { BridgeComponent } from '../../bridge/bridge.js';
import { KafkaConnectivity } from '../../bridge/kafka/connectivity.js';
import { SubscriptionsComponent } from '../../bridge/consumer/push/component.js';
import { ProcessorsComponent } from '../../bridge/processor/component.js';
import { packageVersion } from '../runtime/package-files.js';
import { AdminComponent, type ReadinessCheck } from './admin.js';
import type { RecentErrors } from '../runtime/recent-errors.js';
import { collectStatus } from './status/snapshot.js';

export interface SidecarOptions {
  readonly config: Config;
  /** The file the config came from; SIGHUP re-reads it. Absent when running on defaults. */
  readonly configFile?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly metrics: MeshMetrics;
  readonly telemetry: Telemetry;
  /** The last warnings and errors logged, shown on the status page. */
  readonly recentErrors?: RecentErrors | undefined;
}

export type ReloadResult = { ok: true } | { ok: false; problems: string[] };

/** Top-level config sections a SIGHUP may change while the process runs; others need a restart. */
const RELOADABLE_SECTIONS = new Set(['log', 'shutdown']);

/**
 * What a component says about a new config on SIGHUP: accepted, with a `commit` that applies it
 * (called only when every changed section was accepted), or refused with `<json-pointer>: <message>`s.
 */
export type ReloadVerdict = { ok: true; commit(): void } | { ok: false; problems: string[] };
/** Checks and prepares a changed config section; registered per section by the wiring below. */
export type Reconfigurer = (next: Config) => ReloadVerdict | Promise<ReloadVerdict>;

/**
 * The only place where components are wired together. Owns start order, readiness, reload and
 * the shutdown sequence of the contract: not ready at once → drain delay → listeners stop
 * accepting and finish in-flight work → workers and clients flush → admin last → exit.
 */
export class Sidecar {
  private config: Config;
  private readonly admin: AdminComponent;
  /** Started after admin, in this order; drained in this order too (listeners first). */
  private readonly components: Component[] = [];
  /** Sections a component can take over at runtime (SIGHUP), beyond `RELOADABLE_SECTIONS`. */
  private readonly reconfigurers = new Map<string, Reconfigurer>();
  private started = false;
  private readonly createdAt = new Date();
  private shutdownPromise: Promise<void> | undefined;
  private shutdownReason: string | undefined;
  private markStopped!: () => void;
  /** Resolves once a shutdown, whatever started it, has run to the end. */
  readonly stopped = new Promise<void>((resolve) => {
    this.markStopped = resolve;
  });

  constructor(private readonly options: SidecarOptions) {
    this.config = options.config;
    const { config, logger, metrics, telemetry } = options;
    this.admin = new AdminComponent({
      ...config.admin,
      metrics,
      logger,
      readinessChecks: () => this.readinessChecks(),
      effectiveConfig: () => redactConfig(this.config),
      requestShutdown: (reason) => void this.shutdown(reason),
      status: () =>
        collectStatus({
          version: packageVersion(),
          startedAt: this.createdAt,
          checks: () => this.readinessChecks(),
          components: () => [this.admin, ...this.components],
          recentErrors: options.recentErrors ? () => options.recentErrors!.list() : undefined,
        }),
    });
    if (config.ingress.enabled) {
      this.components.push(
        new IngressComponent({
          ...config.ingress,
          rules: config.ingress,
          baseDir: options.configFile ? dirname(resolve(options.configFile)) : process.cwd(),
          metrics,
          logger,
          tracer: telemetry.tracing ? telemetry.tracer : undefined,
        }),
      );
      const ingress = this.components.at(-1) as IngressComponent;
      this.reconfigurers.set('ingress', (next) => ingress.reconfigure(next.ingress));
    }
    // UPSTREAM_URL (zero-config mode's upstream) is read here, not from the document.
    const upstreamUrl = zeroConfigUpstream(options.env);
    if (egressWanted(config.egress, upstreamUrl)) {
      this.components.push(
        new EgressComponent({
          config: config.egress,
          upstreamUrl,
          metrics,
          logger,
          tracer: telemetry.tracing ? telemetry.tracer : undefined,
        }),
      );
    }
    // Before every Kafka user: checks the cluster (and the credentials) at start-up, and /readyz
    // names what fails; refused credentials end the start-up when kafka.onStartupFailure is exit.
    if (config.bridge.enabled || config.subscriptions.length > 0 || config.processors.length > 0) {
      this.components.push(new KafkaConnectivity({ kafka: config.kafka, logger }));
    }
    if (config.bridge.enabled) {
      this.components.push(
        new BridgeComponent({
          bridge: config.bridge,
          kafka: config.kafka,
          baseDir: options.configFile ? dirname(resolve(options.configFile)) : process.cwd(),
          version: packageVersion(),
          metrics,
          logger,
          tracer: telemetry.tracer,
          // light-mesh dead-letter replay delivers to the app with the subscription's settings.
          lightmeshBackend: { target: config.ingress.target, subscriptions: config.subscriptions },
        }),
      );
    }
    // After the bridge: drained once the listeners stopped, so in-flight deliveries finish and
    // their offsets are committed before the consumers leave their groups.
    if (config.subscriptions.length > 0) {
      this.components.push(
        new SubscriptionsComponent({
          subscriptions: config.subscriptions,
          kafka: config.kafka,
          target: config.ingress.target,
          metrics,
          logger,
          tracer: telemetry.tracer,
        }),
      );
    }
    // Stream processors, drained like subscriptions: in-flight requests finish and their outputs
    // and offsets are committed (or the transaction aborted) before the consumers leave.
    if (config.processors.length > 0) {
      this.components.push(
        new ProcessorsComponent({
          processors: config.processors,
          kafka: config.kafka,
          target: config.ingress.target,
          metrics,
          logger,
          tracer: telemetry.tracer,
        }),
      );
    }
  }

  get adminUrl(): string {
    return this.admin.url;
  }

  /** The bound URL of a listener by component name, for tests and the start-up log. */
  urlOf(name: string): string | undefined {
    const component = this.components.find((c) => c.name === name) as { url?: string } | undefined;
    return component?.url;
  }

  listenerUrls(): Record<string, string> {
    const urls: Record<string, string> = {};
    if (this.config.admin.enabled) urls.admin = this.admin.url;
    for (const component of this.components) {
      const url = this.urlOf(component.name);
      if (url) urls[component.name] = url;
    }
    return urls;
  }

  get currentConfig(): Config {
    return this.config;
  }

  get isShuttingDown(): boolean {
    return this.shutdownPromise !== undefined;
  }

  async start(): Promise<void> {
    const { logger } = this.options;
    if (this.config.admin.enabled) await this.admin.start();
    for (const component of this.components) {
      await component.start();
      logger.info({ component: component.name, url: this.urlOf(component.name) }, 'component started');
    }
    this.started = true;
    // Tests and the quick start read the bound addresses (port 0 = any free port) from this line.
    logger.info({ listeners: this.listenerUrls() }, 'mesh-sidecar started');
  }

  readinessChecks(): ReadinessCheck[] {
    const lifecycle: ReadinessCheck = this.shutdownPromise
      ? { name: 'lifecycle', ready: false, reason: `shutting down (${this.shutdownReason ?? 'signal'})` }
      : this.started
        ? { name: 'lifecycle', ready: true }
        : { name: 'lifecycle', ready: false, reason: 'starting' };
    return [lifecycle, ...this.components.map((c) => ({ name: c.name, ...c.readiness() }))];
  }

  /**
   * Re-reads the config file. A valid document that only changes reloadable sections is applied;
   * anything else is rejected, the running config stays, and the failure is counted and logged.
   */
  async reload(): Promise<ReloadResult> {
    const { logger, metrics } = this.options;
    const result = await this.tryReload();
    metrics.configReloads.inc({ result: result.ok ? 'success' : 'failure' });
    if (result.ok) logger.info({ level: this.config.log.level }, 'config reloaded');
    else logger.error({ problems: result.problems }, 'config reload rejected; keeping the running config');
    return result;
  }

  private async tryReload(): Promise<ReloadResult> {
    if (!this.options.configFile) return { ok: false, problems: ['/: no config file to reload'] };
    let next: Config;
    try {
      next = await loadConfig({ file: this.options.configFile, env: this.options.env });
    } catch (err) {
      if (err instanceof ConfigError)
        return { ok: false, problems: err.problems.map((p) => `${p.pointer || '/'}: ${p.message}`) };
      throw err;
    }
    const changed = Object.keys(next).filter(
      (section) =>
        !RELOADABLE_SECTIONS.has(section) &&
        !isDeepStrictEqual(next[section as keyof Config], this.config[section as keyof Config]),
    );
    const problems: string[] = [];
    const commits: (() => void)[] = [];
    for (const section of changed) {
      const reconfigure = this.reconfigurers.get(section);
      if (!reconfigure) {
        problems.push(`/${section}: changing this section needs a restart`);
        continue;
      }
      const verdict = await reconfigure(next);
      if (verdict.ok) commits.push(() => verdict.commit());
      else problems.push(...verdict.problems);
    }
    if (problems.length > 0) return { ok: false, problems };
    for (const commit of commits) commit();
    this.config = next;
    this.options.logger.level = next.log.level;
    return { ok: true };
  }

  /** Graceful shutdown; idempotent, every caller gets the same promise. */
  shutdown(reason: string): Promise<void> {
    this.shutdownReason ??= reason;
    this.shutdownPromise ??= this.runShutdown(reason);
    return this.shutdownPromise;
  }

  private async runShutdown(reason: string): Promise<void> {
    const { logger, telemetry } = this.options;
    const { drainDelayMs, timeoutMs } = this.config.shutdown;
    logger.info({ reason, drainDelayMs, timeoutMs }, 'shutting down: not ready from now on');
    // Keep accepting while load balancers and kube-proxy notice the failing readiness probe; a
    // sidecar whose start failed was never ready, so nothing routes to it and there is no wait.
    if (this.started) await delay(drainDelayMs);

    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      deadline = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const drained = (async () => {
      for (const component of this.components) {
        await component.drain();
        logger.info({ component: component.name }, 'component drained');
      }
      return 'drained' as const;
    })();
    const outcome = await Promise.race([drained, timedOut]);
    clearTimeout(deadline);
    if (outcome === 'timeout') {
      logger.warn({ timeoutMs }, 'shutdown timeout reached; stopping what is left');
    }
    for (const component of this.components) await component.stop();
    // Admin goes last so probes keep answering (503) until the very end.
    await this.admin.stop();
    await telemetry.shutdown();
    logger.info('mesh-sidecar stopped');
    this.markStopped();
  }
}

function delay(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

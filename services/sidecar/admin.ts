import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Component, ComponentStatus, Readiness } from '../runtime/component.js';
import { MeshError } from '../runtime/errors.js';
import { annotateResponse, HttpListener, sendProblem, type ListenerTls } from '../runtime/http.js';
import type { MeshMetrics } from '../runtime/metrics.js';
import { STATUS_PAGE_HTML } from './status/page.js';
import type { SidecarStatus } from './status/snapshot.js';

export interface ReadinessCheck {
  readonly name: string;
  readonly ready: boolean;
  readonly reason?: string;
}

export interface AdminOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: ListenerTls | undefined;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Every check that /readyz reports; the sidecar is ready when all are. */
  readonly readinessChecks: () => readonly ReadinessCheck[];
  /** The effective config with secrets redacted. */
  readonly effectiveConfig: () => unknown;
  /** Starts the same graceful shutdown as SIGTERM. */
  readonly requestShutdown: (reason: string) => void;
  /** The status document of `GET /status` and the page at `GET /`; absent: those answer 404. */
  readonly status?: (() => Promise<SidecarStatus>) | undefined;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return v4.startsWith('127.') || address === '::1';
}

/** The admin listener: probes, metrics, effective config and the Jobs' quit endpoint. */
export class AdminComponent implements Component {
  readonly name = 'admin';
  private readonly listener: HttpListener;

  constructor(private readonly options: AdminOptions) {
    this.listener = new HttpListener({
      name: 'admin',
      host: options.host,
      port: options.port,
      tls: options.tls,
      handler: this.buildApp(),
      metrics: options.metrics,
      logger: options.logger,
      accessLogLevel: 'debug',
    });
  }

  get url(): string {
    return this.listener.url;
  }

  async start(): Promise<void> {
    await this.listener.listen();
  }

  readiness(): Readiness {
    return this.listener.isListening ? { ready: true } : { ready: false, reason: 'admin listener not bound' };
  }

  status(): ComponentStatus {
    return { listener: this.listener.status() };
  }

  drain(): Promise<void> {
    return this.listener.drain();
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  /** `mesh_ready` and `mesh_readiness_check{check}` follow `/readyz` at each scrape. */
  private recordReadiness(): void {
    const { metrics } = this.options;
    const checks = this.options.readinessChecks();
    metrics.ready.set(checks.every((check) => check.ready) ? 1 : 0);
    metrics.readinessCheck.reset();
    for (const check of checks) metrics.readinessCheck.set({ check: check.name }, check.ready ? 1 : 0);
  }

  private buildApp(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    const route = (name: string) => (_req: Request, res: Response, next: NextFunction) => {
      annotateResponse(res, { route: name });
      next();
    };

    app.get('/healthz', route('/healthz'), (_req, res) => {
      res.json({ status: 'alive' });
    });

    app.get('/readyz', route('/readyz'), (_req, res) => {
      const checks = this.options.readinessChecks();
      const failing = checks.filter((check) => !check.ready);
      if (failing.length === 0) {
        res.json({ status: 'ready', checks });
        return;
      }
      const detail = failing.map((check) => `${check.name}: ${check.reason ?? 'not ready'}`).join('; ');
      res.setHeader('retry-after', '1');
      res
        .status(503)
        .type('application/problem+json')
        .json({
          ...new MeshError('MESH_NOT_READY', detail).toProblem('/readyz'),
          checks,
        });
    });

    const status = this.options.status;
    if (status) {
      app.get('/', route('/'), (_req, res) => {
        res.setHeader('cache-control', 'no-store');
        res.type('html').send(STATUS_PAGE_HTML);
      });
      app.get('/status', route('/status'), async (_req, res, next) => {
        try {
          res.setHeader('cache-control', 'no-store');
          res.json(await status());
        } catch (err) {
          next(err);
        }
      });
    }

    app.get('/metrics', route('/metrics'), async (_req, res, next) => {
      try {
        this.recordReadiness();
        const text = await this.options.metrics.registry.metrics();
        res.type(this.options.metrics.registry.contentType).send(text);
      } catch (err) {
        next(err);
      }
    });

    app.get('/config', route('/config'), (_req, res) => {
      res.json(this.options.effectiveConfig());
    });

    app.post('/quitquitquit', route('/quitquitquit'), (req, res) => {
      if (!isLoopbackAddress(req.socket.remoteAddress)) {
        sendProblem(res, new MeshError('MESH_FORBIDDEN', '/quitquitquit is only served to loopback callers'));
        return;
      }
      res.json({ status: 'shutting down' });
      this.options.requestShutdown('POST /quitquitquit');
    });

    app.use((req: Request, res: Response) => {
      sendProblem(res, new MeshError('MESH_NOT_FOUND', `no admin endpoint ${req.method} ${req.path}`));
    });
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      this.options.logger.error({ err }, 'admin request failed');
      sendProblem(res, err);
    });
    return app;
  }
}

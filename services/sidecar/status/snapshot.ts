/**
 * The sidecar's status as one JSON document (`GET /status`): readiness with the reason of each
 * failing check, and what every component says of itself through `Component.status()`. The HTML
 * page (`GET /`) and `mesh-sidecar status` both render this document and nothing else.
 */
import type { Component, ComponentStatus } from '../../runtime/component.js';
import type { RecentLogEntry } from '../../runtime/recent-errors.js';

export interface StatusCheck {
  readonly name: string;
  readonly ready: boolean;
  readonly reason?: string | undefined;
}

export interface SidecarStatus {
  readonly service: 'mesh-sidecar';
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  /** When this document was made (the page shows how fresh it is). */
  readonly generatedAt: string;
  readonly ready: boolean;
  readonly checks: readonly StatusCheck[];
  /** By component name (`admin`, `ingress`, `egress`, `bridge`, `subscriptions`, ...). */
  readonly components: Readonly<Record<string, ComponentStatus>>;
  /** The last warnings and errors logged, newest first. */
  readonly recentErrors: readonly RecentLogEntry[];
}

export interface StatusSources {
  readonly version: string;
  readonly startedAt: Date;
  readonly checks: () => readonly StatusCheck[];
  /** Admin first, then the rest in start order. */
  readonly components: () => readonly Component[];
  readonly recentErrors?: (() => readonly RecentLogEntry[]) | undefined;
  readonly now?: () => Date;
}

/** Collects the document; a component whose `status()` throws shows the error instead of failing the page. */
export async function collectStatus(sources: StatusSources): Promise<SidecarStatus> {
  const now = sources.now?.() ?? new Date();
  const checks = sources.checks().map(({ name, ready, reason }) => ({
    name,
    ready,
    ...(reason === undefined ? {} : { reason }),
  }));
  const components: Record<string, ComponentStatus> = {};
  for (const component of sources.components()) {
    if (typeof component.status !== 'function') continue;
    try {
      components[component.name] = await component.status();
    } catch (err) {
      components[component.name] = { statusError: (err as Error).message };
    }
  }
  return {
    service: 'mesh-sidecar',
    version: sources.version,
    pid: process.pid,
    startedAt: sources.startedAt.toISOString(),
    uptimeSeconds: Math.max(0, Math.round((now.getTime() - sources.startedAt.getTime()) / 1000)),
    generatedAt: now.toISOString(),
    ready: checks.every((check) => check.ready),
    checks,
    components,
    recentErrors: sources.recentErrors?.() ?? [],
  };
}

/**
 * The last warnings and errors the sidecar logged, kept in a small ring buffer for the admin status
 * page (`GET /status`). It sits between pino and stdout as a tee, so every `logger.warn/error/fatal`
 * anywhere in the process lands here without the callers knowing.
 */
import { pino, type DestinationStream } from 'pino';

export interface RecentLogEntry {
  /** ISO time of the log line. */
  readonly time: string;
  readonly level: 'warn' | 'error' | 'fatal';
  readonly msg: string;
  /** `component`, `subscription`, `service` or `listener` of the line, when it has one. */
  readonly source?: string;
  /** The error message of the line (`err`), when it has one. */
  readonly error?: string;
}

/** Lines at these levels are kept; pino writes the level label first (see logging.ts formatters). */
const KEPT_PREFIXES = ['{"level":"warn"', '{"level":"error"', '{"level":"fatal"'];
const SOURCE_FIELDS = ['component', 'subscription', 'service', 'listener', 'group'] as const;
const MAX_TEXT = 500;

export class RecentErrors {
  private readonly entries: RecentLogEntry[] = [];

  constructor(readonly capacity = 50) {}

  record(entry: RecentLogEntry): void {
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
  }

  /** Newest first. */
  list(): RecentLogEntry[] {
    return [...this.entries].reverse();
  }

  /** Reads one pino JSON line; keeps it when it is a warning or worse. */
  observeLine(line: string): void {
    if (!KEPT_PREFIXES.some((prefix) => line.startsWith(prefix))) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const source = SOURCE_FIELDS.map((field) => parsed[field]).find((value) => typeof value === 'string');
    this.record({
      time: typeof parsed.time === 'string' ? parsed.time : new Date().toISOString(),
      level: parsed.level as RecentLogEntry['level'],
      msg: clip(typeof parsed.msg === 'string' ? parsed.msg : ''),
      ...(typeof source === 'string' ? { source } : {}),
      ...(errorText(parsed.err) === undefined ? {} : { error: clip(errorText(parsed.err)!) }),
    });
  }

  /**
   * A pino destination that writes every line to `destination` (stdout when absent) and keeps the
   * warnings and errors. `flush` is passed on, so `logger.flush()` still drains stdout on exit.
   */
  tee(destination: DestinationStream = pino.destination({ fd: 1, sync: false })): DestinationStream {
    const target = destination as DestinationStream & { flush?: (cb: (err?: Error) => void) => void };
    const tee: DestinationStream & { flush(cb: (err?: Error) => void): void } = {
      write: (line: string) => {
        this.observeLine(line);
        return target.write(line);
      },
      flush: (cb) => {
        if (typeof target.flush === 'function') target.flush(cb);
        else cb();
      },
    };
    return tee;
  }
}

function errorText(err: unknown): string | undefined {
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return undefined;
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

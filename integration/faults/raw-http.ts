/**
 * Raw HTTP over a net.Socket, for input no well-behaved client would send (conflicting framing
 * headers, slow headers): the test sees exactly the bytes the listener answered.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** The status of the first answer, or 0 when the connection closed without one. */
  readonly status: number;
  /** Everything the server sent. */
  readonly text: string;
  /** Whether the server closed the connection (rather than us, after `idleMs` of silence). */
  readonly closedByServer: boolean;
}

function hostPort(url: string): { host: string; port: number } {
  const { hostname, port } = new URL(url);
  return { host: hostname.replace(/^\[|\]$/g, ''), port: Number(port) };
}

/** Sends `payload` and collects the answer until the server closes or is silent for `idleMs`. */
export function rawExchange(url: string, payload: string | Buffer, idleMs = 1_500): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(hostPort(url));
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let closedByServer = true;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        closedByServer = false;
        socket.destroy();
      }, idleMs);
    };
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : 0, text, closedByServer });
    });
  });
}

/**
 * A slowloris client: sends a request line, then one more header line every `everyMs`, never the
 * end of the headers. Resolves with what the server answered once it closes the connection;
 * gives up (status 0, closedByServer false) after `maxMs`.
 */
export function slowHeaders(url: string, everyMs = 500, maxMs = 40_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket: Socket = connect(hostPort(url));
    const chunks: Buffer[] = [];
    let sent = 0;
    let ticker: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      clearInterval(ticker);
      socket.destroy();
      resolve({ status: 0, text: 'still open', closedByServer: false });
    }, maxMs);
    socket.on('connect', () => {
      socket.write('GET / HTTP/1.1\r\nHost: slow\r\n');
      ticker = setInterval(() => {
        if (!socket.writable) return;
        socket.write(`x-slow-${sent++}: ${'a'.repeat(8)}\r\n`);
      }, everyMs);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(ticker);
      clearTimeout(giveUp);
      const text = Buffer.concat(chunks).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : 0, text, closedByServer: true });
    });
  });
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb[1]) * 1024;
}

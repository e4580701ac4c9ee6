import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: `preferred` when it is free, else any.
 * For processes that must be told their port up front (a broker restarted on the same port, a
 * sidecar at log level warn that does not log what it bound).
 */
export function freePort(preferred = 0): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const bound = (server.address() as { port: number }).port;
        server.close(() => resolve(bound));
      });
    });
  return tryListen(preferred).then(async (port) => port ?? (await tryListen(0))!);
}

/**
 * The floor of any Node.js proxy, below bench/bare-forwarder.ts: each client connection piped byte
 * for byte to its own connection to the origin, with no HTTP parsing at all (so no routing, header
 * handling or pooling across clients either). What it adds to the direct call is what one more
 * Node.js process on the path costs on this machine — event loop wake-ups, socket reads and writes,
 * its garbage collector — whatever the proxy does with the bytes. It runs with the sidecar's Node flags.
 *
 *   node [flags] --import tsx bench/pipe-forwarder.ts <origin>     prints "listening on <url>"
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

const origin = process.argv[2];
if (origin === undefined) throw new Error('usage: pipe-forwarder.ts <origin>');
const { hostname, port } = new URL(origin);

const server = createServer({ noDelay: true }, (client: Socket) => {
  const upstream = connect({ host: hostname, port: Number(port), noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const socket of [client, upstream]) {
    socket.on('error', closeBoth);
    socket.on('close', closeBoth);
  }
});
server.listen(0, '127.0.0.1', () => {
  const { port: bound } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${bound}`);
});
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));

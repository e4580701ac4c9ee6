/**
 * The gRPC app of the gRPC benchmark, in its own process (so the load generator does not share its
 * event loop): one unary method that answers every request with its own bytes, prefixed.
 *
 *   node --import tsx bench/grpc/app.ts     prints "listening on http://127.0.0.1:<port>"
 */
import * as grpc from '@grpc/grpc-js';
import { ECHO_SERVICE } from './echo.js';

const server = new grpc.Server();
const prefix = Buffer.from('echo:');
server.addService(ECHO_SERVICE, {
  echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
    callback(null, Buffer.concat([prefix, call.request])),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(`listening on http://127.0.0.1:${port}`);
});
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));

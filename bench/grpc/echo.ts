/** The benchmark's one gRPC method; messages are raw bytes, so no .proto is needed. */
const bytes = (buffer: Buffer) => buffer;

export const ECHO_PATH = '/mesh.bench.Echo/Echo';

export const ECHO_SERVICE = {
  echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
} as const;

export { bytes };

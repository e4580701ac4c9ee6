/**
 * gRPC-Web into a gRPC app, as Envoy's grpc_web filter does it: a browser's gRPC-Web call (any HTTP
 * version, `application/grpc-web[+proto|+json]`, or `application/grpc-web-text[...]` with base64
 * bodies) goes to the app as a gRPC call over HTTP/2; the answer comes back with the app's trailers
 * (grpc-status, grpc-message, trailing metadata) as gRPC-Web's trailer frame at the end of the body
 * — browsers cannot read HTTP trailers.
 *
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { annotateResponse } from '../../services/runtime/http.js';
import type { UpstreamBody } from '../shared/upstream.js';

export type GrpcWebMode = 'binary' | 'text';

const GRPC_WEB = 'application/grpc-web';
const GRPC_WEB_TEXT = 'application/grpc-web-text';

/** The gRPC-Web variant of a request's content type, or undefined when it is not gRPC-Web. */
export function grpcWebMode(contentType: unknown): GrpcWebMode | undefined {
  if (typeof contentType !== 'string' || !contentType.startsWith(GRPC_WEB)) return undefined;
  return contentType.startsWith(GRPC_WEB_TEXT) ? 'text' : 'binary';
}

/** `application/grpc-web-text+proto` → `+proto`; parameters (`; charset=`) are dropped. */
function subtype(contentType: string, mode: GrpcWebMode): string {
  const base = contentType.split(';')[0].trim();
  return base.slice((mode === 'text' ? GRPC_WEB_TEXT : GRPC_WEB).length);
}

/** The request headers as the gRPC app gets them: its content type, no length (text bodies shrink). */
export function toGrpcRequest(headers: OutgoingHttpHeaders, mode: GrpcWebMode): void {
  headers['content-type'] = `application/grpc${subtype(String(headers['content-type']), mode)}`;
  if (mode === 'text') delete headers['content-length'];
}

/** Decodes a base64 body whose chunks may split a 4-character group (whitespace ignored). */
export class Base64Decoder extends Transform {
  private carry = '';

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const text = this.carry + chunk.toString('latin1').replace(/\s+/g, '');
    const whole = text.length - (text.length % 4);
    this.carry = text.slice(whole);
    callback(null, whole > 0 ? Buffer.from(text.slice(0, whole), 'base64') : undefined);
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.carry.length > 0 ? Buffer.from(this.carry, 'base64') : undefined);
  }
}

/** The request body the app gets: decoded from base64 in text mode. */
export function grpcRequestBody(body: Buffer | Readable | null, mode: GrpcWebMode): Buffer | Readable | null {
  if (mode === 'binary' || body === null) return body;
  if (Buffer.isBuffer(body)) return Buffer.from(body.toString('latin1').replace(/\s+/g, ''), 'base64');
  const decoder = new Base64Decoder();
  body.once('error', (err) => decoder.destroy(err));
  return body.pipe(decoder);
}

/** gRPC-Web's trailer frame: flag 0x80, length, then the trailers as HTTP/1 header lines. */
export function trailerFrame(trailers: IncomingHttpHeaders): Buffer {
  let block = '';
  for (const name in trailers) {
    const value = trailers[name];
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) block += `${name}:${one}\r\n`;
  }
  const payload = Buffer.from(block, 'utf8');
  const frame = Buffer.alloc(5 + payload.length);
  frame[0] = 0x80;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}

/**
 * Writes the app's gRPC answer to a gRPC-Web caller: gRPC-Web headers, the message frames as they
 * come (base64 in text mode, carrying the bytes of an incomplete 3-byte group to the next chunk so
 * the stream is one base64 text), then the trailer frame made of the app's trailers.
 */
export function relayAsGrpcWeb(
  res: ServerResponse,
  statusCode: number,
  headers: OutgoingHttpHeaders,
  body: UpstreamBody,
  mode: GrpcWebMode,
): void {
  const given = typeof headers['content-type'] === 'string' ? headers['content-type'] : 'application/grpc';
  headers['content-type'] =
    `${mode === 'text' ? GRPC_WEB_TEXT : GRPC_WEB}${given.split(';')[0].trim().slice('application/grpc'.length)}`;
  delete headers['content-length'];
  res.writeHead(statusCode, headers);
  let carry: Buffer | undefined;
  const encode = (chunk: Buffer, last: boolean): Buffer => {
    if (mode === 'binary') return chunk;
    const bytes = carry === undefined ? chunk : Buffer.concat([carry, chunk]);
    const whole = last ? bytes.length : bytes.length - (bytes.length % 3);
    carry = whole < bytes.length ? bytes.subarray(whole) : undefined;
    return Buffer.from(bytes.subarray(0, whole).toString('base64'), 'latin1');
  };
  // What pipeTo needs of a response; `end` adds the trailer frame.
  const sink = {
    req: res.req,
    write: (chunk: Buffer) => {
      const out = encode(chunk, false);
      return out.length === 0 || res.write(out);
    },
    end: (chunk?: Buffer) => {
      const out = chunk === undefined ? undefined : encode(chunk, false);
      if (out !== undefined && out.length > 0) res.write(out);
      const trailers = body.trailers ?? {};
      const grpcStatus = trailers['grpc-status'];
      if (typeof grpcStatus === 'string') annotateResponse(res, { grpcStatus });
      res.end(encode(trailerFrame(trailers), true));
    },
    // Trailers go into the trailer frame, never as HTTP trailers.
    addTrailers: () => undefined,
    once: (event: string, listener: () => void) => res.once(event, listener),
    destroy: (err?: Error) => res.destroy(err),
  };
  body.pipeTo(sink as unknown as ServerResponse);
}

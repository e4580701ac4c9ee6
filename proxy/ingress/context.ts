import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { JWTPayload } from 'jose';
import type { CallSignal } from '../shared/signal.js';
import type { CompiledOperation } from './openapi/compile.js';

/** What the ingress pipeline knows about one request; each step reads and adds to it. */
export interface IngressContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /**
   * The caller's address, read when the request arrived: a request whose body failed its size
   * limit is destroyed with its connection, and its socket gone, while later steps still run.
   */
  readonly clientAddress: string | undefined;
  /** Aborted when the client goes away before its response has ended. */
  readonly gone: CallSignal;
  readonly method: string;
  /** Raw path (percent-encoded, no query string). */
  readonly path: string;
  /** Raw query string without `?` ('' when none). */
  readonly query: string;
  /** Bounded route label: the OpenAPI path template, `unmatched`, or `forward` without a document. */
  route: string;
  /** The operation matched in the OpenAPI document, if any. */
  operation: CompiledOperation | undefined;
  /** Why no operation matched: no path (`not_found`), or the methods the path has. */
  miss:
    | { readonly kind: 'not_found' }
    | { readonly kind: 'method'; readonly allow: readonly string[] }
    | undefined;
  /** Path parameters, still percent-encoded. */
  pathParams: Record<string, string>;
  /** Claims of the verified bearer token. */
  claims: JWTPayload | undefined;
  /** What is forwarded as the body: a buffer that was validated, a size-limited stream, or nothing. */
  body: Buffer | Readable | null;
}

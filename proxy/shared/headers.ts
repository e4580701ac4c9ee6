import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * RFC 9110 §7.6.1 connection-specific headers, never forwarded by a proxy; and `Expect`, which the
 * sidecar meets itself, as Envoy does by default: node:http has answered `100 Continue` to the caller
 * before the handler runs (and 417 to any other expectation), so the body is on its way and the
 * upstream has nothing to wait for (undici would refuse the header anyway).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Copies headers without hop-by-hop ones, nor those the `Connection` header names, nor HTTP/2
 * pseudo-headers, nor `omit`
 * (left out here rather than deleted after: `delete` turns an object into a slow dictionary).
 */
export function withoutHopByHop(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  omit?: string,
) {
  const connection = headers.connection;
  // Most requests name nothing but `keep-alive` or `close`: no set to build for them.
  const named =
    connection === undefined || connection === 'keep-alive' || connection === 'close'
      ? undefined
      : new Set(
          (Array.isArray(connection) ? connection.join(',') : connection)
            .split(',')
            .map((token) => token.trim().toLowerCase())
            .filter(Boolean),
        );
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    // HTTP/2 pseudo-headers (`:path`, `:authority`, …) describe this hop's request, not the next one's.
    if (name.charCodeAt(0) === 0x3a) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || lower === omit) continue;
    out[lower] = value;
  }
  return out;
}

/** Quotes an RFC 7239 `Forwarded` value when it is not a plain token (IPv6 addresses, ports). */
function forwardedValue(value: string): string {
  return /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(value) ? value : `"${value.replace(/"/g, '\\"')}"`;
}

/**
 * The last `Forwarded` element built: one sidecar sees the same few clients and hosts, so this
 * usually saves the regex tests and the string building of every request.
 */
let lastElement: { client: string | undefined; host: string | undefined; protocol: string; value: string } = {
  client: undefined,
  host: undefined,
  protocol: '',
  value: '',
};

function forwardedElement(client: string | undefined, host: string | undefined, protocol: string): string {
  const last = lastElement;
  if (last.client === client && last.host === host && last.protocol === protocol) return last.value;
  const value = [
    client ? `for=${forwardedValue(client.includes(':') ? `[${client}]` : client)}` : undefined,
    host ? `host=${forwardedValue(host)}` : undefined,
    `proto=${protocol}`,
  ]
    .filter(Boolean)
    .join(';');
  lastElement = { client, host, protocol, value };
  return value;
}

export interface ForwardingFacts {
  readonly clientAddress: string | undefined;
  readonly protocol: 'http' | 'https';
  readonly host: string | undefined;
}

/** Appends this hop to `X-Forwarded-For` and `Forwarded`, and sets `X-Forwarded-Proto/Host`. */
export function addForwardingHeaders(headers: OutgoingHttpHeaders, facts: ForwardingFacts): void {
  const client = facts.clientAddress?.startsWith('::ffff:')
    ? facts.clientAddress.slice('::ffff:'.length)
    : facts.clientAddress;
  if (client) {
    const previous = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = previous ? `${String(previous)}, ${client}` : client;
  }
  headers['x-forwarded-proto'] = facts.protocol;
  if (facts.host) headers['x-forwarded-host'] = facts.host;
  const element = forwardedElement(client, facts.host, facts.protocol);
  const previousForwarded = headers.forwarded;
  headers.forwarded = previousForwarded ? `${String(previousForwarded)}, ${element}` : element;
}

/**
 * What a kafkajs failure means for the sidecar: credentials refused, TLS refused, or a retriable
 * hiccup (broker gone, leader moved, timeout). kafkajs wraps errors (retries exceeded, non-retriable
 * wrappers), so every check looks through the whole chain.
 */

/** The error and everything it wraps (`originalError`, `cause`), outermost first. */
export function errorChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = err; current !== undefined && current !== null && chain.length < 10;) {
    chain.push(current);
    const next =
      (current as { originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
    if (next === current) break;
    current = next;
  }
  return chain;
}

const AUTH_TYPES = new Set([
  'SASL_AUTHENTICATION_FAILED',
  'ILLEGAL_SASL_STATE',
  'UNSUPPORTED_SASL_MECHANISM',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
]);

/** SASL refused the credentials (or the mechanism). */
export function isAuthenticationError(err: unknown): boolean {
  return errorChain(err).some((e) => {
    const { name, type } = e as { name?: string; type?: string };
    return name === 'KafkaJSSASLAuthenticationError' || (type !== undefined && AUTH_TYPES.has(type));
  });
}

/** Node's codes for a broker certificate that cannot be trusted, and for a refused handshake. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'EPROTO',
]);

/** The TLS handshake failed: untrusted or mismatched broker certificate, or the broker refused ours. */
export function isTlsError(err: unknown): boolean {
  return errorChain(err).some((e) => {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TLS_CODES.has(code) || code.startsWith('ERR_SSL_'))) return true;
    return /certificate|self[- ]signed|SSL routines|TLS/i.test(String((e as Error).message ?? ''));
  });
}

/** Protocol error types a producer may retry: the record was not written, or the idempotent
 * producer's sequence numbers make a resend safe. */
const RETRIABLE_TYPES = new Set([
  'NOT_LEADER_FOR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'KAFKA_STORAGE_ERROR',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'BROKER_NOT_AVAILABLE',
]);

const RETRIABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
]);

/**
 * A failure worth trying again (broker down, leader moved, timed out), as opposed to one that will
 * fail the same way again (authentication, an unknown topic, a record too large). kafkajs gives up
 * after its own retries with a non-retriable wrapper, so the wrapped errors decide.
 */
export function isRetriableKafkaError(err: unknown): boolean {
  if (isAuthenticationError(err) || isTlsError(err)) return false;
  const chain = errorChain(err);
  // kafkajs marks it retriable, but the bridge answers it as an unknown partition (404) at once.
  if (chain.some((e) => (e as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION')) return false;
  return chain.some((e) => {
    const { name, type, retriable } = e as { name?: string; type?: string; retriable?: boolean };
    if (type !== undefined && RETRIABLE_TYPES.has(type)) return true;
    if (name !== undefined && RETRIABLE_NAMES.has(name)) return true;
    return (
      name !== 'KafkaJSNumberOfRetriesExceeded' && name !== 'KafkaJSNonRetriableError' && retriable === true
    );
  });
}

/** The broker an error names (`host:port`), if kafkajs recorded one. */
export function brokerOf(err: unknown): string | undefined {
  for (const e of errorChain(err)) {
    const broker = (e as { broker?: unknown }).broker;
    if (typeof broker === 'string' && broker !== '') return broker;
  }
  return undefined;
}

/** The innermost message that says something (kafkajs' wrappers repeat or hide the cause). */
export function rootMessage(err: unknown): string {
  const chain = errorChain(err);
  const messages = chain.map((e) => String((e as Error).message ?? e)).filter((m) => m !== '');
  return messages.at(-1) ?? String(err);
}

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { KafkaJSConnectionError, KafkaJSProtocolError } from 'kafkajs';
import { pino } from 'pino';
import { validateConfig } from '../../services/runtime/config.js';
import { KafkaConnectivity, probeKafka } from './connectivity.js';
import { isAuthenticationError, isRetriableKafkaError, isTlsError } from './errors.js';

const logger = pino({ level: 'silent' });

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('kafka connectivity', () => {
  it('names every bootstrap broker it could not reach', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const result = await probeKafka(
      { bootstrap: [`127.0.0.1:${a}`, `127.0.0.1:${b}`], clientId: 'test', connectionTimeoutMs: 500 },
      logger,
    );
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.kind === 'unreachable');
    assert.match(result.message, new RegExp(`127\\.0\\.0\\.1:${a}: .*ECONNREFUSED.*127\\.0\\.0\\.1:${b}`));
  });

  it('reports a missing secret file before connecting, and fails start-up with exit', async () => {
    const kafka = validateConfig({
      kafka: {
        bootstrap: ['127.0.0.1:9'],
        sasl: { mechanism: 'scram-sha-256', username: 'app', passwordFile: '/nonexistent/password' },
      },
    }).kafka;
    const component = new KafkaConnectivity({ kafka, logger });
    await assert.rejects(component.start(), /cannot read kafka.sasl.passwordFile \/nonexistent\/password/);
    await component.stop();

    const lenient = new KafkaConnectivity({ kafka: { ...kafka, onStartupFailure: 'not-ready' }, logger });
    await lenient.start();
    const readiness = lenient.readiness();
    assert.equal(readiness.ready, false);
    assert.match(readiness.reason ?? '', /kafka.sasl.passwordFile/);
    await lenient.stop();
  });

  it('does not fail start-up when the brokers are merely unreachable', async () => {
    const kafka = validateConfig({ kafka: { bootstrap: [`127.0.0.1:${await closedPort()}`] } }).kafka;
    const component = new KafkaConnectivity({ kafka, logger });
    await component.start();
    assert.match(component.readiness().reason ?? '', /no Kafka bootstrap broker answered/);
    await component.stop();
  });

  it('classifies kafkajs errors through their wrappers', () => {
    const sasl = Object.assign(new Error('SASL SCRAM SHA512 authentication failed'), {
      name: 'KafkaJSSASLAuthenticationError',
    });
    assert.ok(isAuthenticationError(sasl));
    assert.ok(!isRetriableKafkaError(sasl));
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED', { broker: 'b:1' });
    const exhausted = Object.assign(new Error('retries exceeded'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      retriable: false,
      originalError: refused,
    });
    assert.ok(isRetriableKafkaError(exhausted), 'looks through the retries-exceeded wrapper');
    const notLeader = new KafkaJSProtocolError({
      type: 'NOT_LEADER_FOR_PARTITION',
      code: 6,
      retriable: true,
      message: 'not leader',
    } as never);
    assert.ok(isRetriableKafkaError(notLeader));
    const unknownTopic = new KafkaJSProtocolError({
      type: 'UNKNOWN_TOPIC_OR_PARTITION',
      code: 3,
      retriable: true,
      message: 'unknown',
    } as never);
    assert.ok(!isRetriableKafkaError(unknownTopic), 'answered 404 at once');
    const tls = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    assert.ok(isTlsError(new KafkaJSConnectionError(`Connection error: ${tls.message}`, { code: tls.code })));
    assert.ok(!isRetriableKafkaError(new Error('record too large')));
  });
});

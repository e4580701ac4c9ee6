import assert from 'node:assert/strict';
import { ConfigError, redactConfig, validateConfig } from '../../services/runtime/config.js';

function problems(kafka: unknown): string[] {
  try {
    validateConfig({ kafka });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => `${p.pointer}: ${p.message}`);
  }
}

describe('kafka config rules', () => {
  it('fills the defaults and keeps tls and sasl absent unless set', () => {
    const { kafka } = validateConfig({});
    assert.equal(kafka.onStartupFailure, 'exit');
    assert.deepEqual(kafka.retry, { retries: 5, initialBackoffMs: 300, maxBackoffMs: 30000 });
    assert.equal(kafka.tls, undefined);
    assert.equal(kafka.sasl, undefined);
    assert.equal(validateConfig({ kafka: { tls: {} } }).kafka.tls?.rejectUnauthorized, true);
  });

  it('wants a user and exactly one of password and passwordFile for plain and scram', () => {
    assert.deepEqual(problems({ sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } }), []);
    assert.deepEqual(problems({ sasl: { mechanism: 'scram-sha-512', password: 'p' } }), [
      '/kafka/sasl/username: is required for scram-sha-512',
    ]);
    assert.deepEqual(problems({ sasl: { mechanism: 'plain', username: 'u' } }), [
      '/kafka/sasl: needs password or passwordFile',
    ]);
    assert.deepEqual(
      problems({ sasl: { mechanism: 'plain', username: 'u', password: 'p', passwordFile: '/f' } }),
      ['/kafka/sasl: give password or passwordFile, not both'],
    );
  });

  it('wants an oauthbearer token source with one client secret, and no password', () => {
    const oauthbearer = { tokenUrl: 'https://idp/token', clientId: 'c', clientSecret: 's' };
    assert.deepEqual(problems({ sasl: { mechanism: 'oauthbearer', oauthbearer } }), []);
    assert.deepEqual(problems({ sasl: { mechanism: 'oauthbearer' } }), [
      '/kafka/sasl/oauthbearer: is required for oauthbearer',
    ]);
    assert.deepEqual(
      problems({
        sasl: {
          mechanism: 'oauthbearer',
          password: 'p',
          oauthbearer: { ...oauthbearer, clientSecret: undefined },
        },
      }),
      [
        '/kafka/sasl/oauthbearer: needs clientSecret or clientSecretFile',
        '/kafka/sasl/password: is not used by oauthbearer',
      ],
    );
  });

  it('refuses a PEM value given twice and a certificate without its key', () => {
    assert.deepEqual(problems({ tls: { ca: 'x', caFile: '/ca' } }), [
      '/kafka/tls: give ca or caFile, not both',
    ]);
    assert.deepEqual(problems({ tls: { certFile: '/cert' } }), [
      '/kafka/tls: a client certificate needs its key',
    ]);
    assert.deepEqual(problems({ tls: { certFile: '/cert', keyFile: '/key' } }), []);
  });

  it('redacts the password, the TLS key and the client secret in /config', () => {
    const config = validateConfig({
      kafka: {
        tls: { key: 'PRIVATE KEY', certFile: '/c' },
        sasl: { mechanism: 'plain', username: 'u', password: 'hunter2' },
      },
    });
    const shown = JSON.stringify(redactConfig(config));
    assert.ok(!shown.includes('hunter2') && !shown.includes('PRIVATE KEY'), shown);
    const oauth = validateConfig({
      kafka: {
        sasl: {
          mechanism: 'oauthbearer',
          oauthbearer: { tokenUrl: 'https://i/t', clientId: 'c', clientSecret: 'sss-secret' },
        },
      },
    });
    assert.ok(!JSON.stringify(redactConfig(oauth)).includes('sss-secret'));
  });
});

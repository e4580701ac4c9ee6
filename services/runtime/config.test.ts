import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateConfigTypes, generatedTypesFile } from '../../scripts/gen-config-types.js';
import {
  applyEnvOverrides,
  ConfigError,
  configSchema,
  formatProblems,
  interpolateEnv,
  loadConfig,
  parseConfigText,
  redactConfig,
  redactWithSchema,
  validateConfig,
  zeroConfigUpstream,
  type AdminConfig,
  type BridgeConfig,
  type EgressConfig,
  type ConfigProblem,
  type IngressConfig,
  type JsonSchema,
  type KafkaConfig,
  type LogConfig,
  type MeshConfig,
  type ShutdownConfig,
  type TelemetryConfig,
  type TlsConfig,
} from './config.js';

/** The problems of a ConfigError thrown by `action`, formatted as check-config prints them. */
function problemLines(action: () => unknown): string[] {
  try {
    action();
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  assert.fail('expected a ConfigError');
}

async function asyncProblemLines(action: () => Promise<unknown>): Promise<string[]> {
  try {
    await action();
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  assert.fail('expected a ConfigError');
}

const properties = (schema: unknown): Record<string, JsonSchema> =>
  (schema as { properties: Record<string, JsonSchema> }).properties;
/** The schema whose properties a section has: the section itself, or one entry of an array section. */
const sectionEntrySchema = (schema: JsonSchema): JsonSchema =>
  schema.type === 'array' ? (schema.items as JsonSchema) : schema;

describe('config', () => {
  describe('validateConfig', () => {
    it('refuses subscriptions whose fields contradict each other, naming each pointer', () => {
      const lines = problemLines(() =>
        validateConfig({
          subscriptions: [
            { name: 'orders', group: 'g', topics: ['orders'], topicPattern: 'orders-.*' },
            { name: 'orders', group: 'g', topicPattern: '(' },
            { name: 'audit', group: 'g', topics: ['audit'], onPoison: 'deadLetter' },
            { name: 'slow', group: 'g', topics: ['s'], retry: { initialBackoffMs: 5000, maxBackoffMs: 100 } },
            { name: 'none', group: 'g' },
          ],
        }),
      );
      assert.deepEqual(
        lines.map((line) => line.replace(/: invalid regular expression: .*/, ': invalid regular expression')),
        [
          '/subscriptions/0: must have exactly one of topics and topicPattern',
          '/subscriptions/1/name: duplicate subscription name "orders"',
          '/subscriptions/1/topicPattern: invalid regular expression',
          '/subscriptions/2/onPoison: deadLetter needs deadLetterTopic',
          '/subscriptions/3/retry/initialBackoffMs: must not exceed maxBackoffMs',
          '/subscriptions/4: must have exactly one of topics and topicPattern',
        ],
      );
    });

    it('refuses egress health checks that are neither or both HTTP and gRPC, or gRPC over HTTP/1.1', () => {
      const service = (healthCheck: object, protocol = 'http2') => ({
        endpoints: ['http://127.0.0.1:9'],
        protocol,
        healthCheck,
      });
      const lines = problemLines(() =>
        validateConfig({
          egress: {
            services: {
              both: service({ path: '/healthz', grpcService: '' }),
              neither: service({ intervalMs: 100 }),
              plain: service({ grpcService: 'shop.Orders' }, 'http1'),
              fine: service({ grpcService: '' }),
              http: service({ path: '/healthz' }, 'http1'),
            },
          },
        }),
      );
      assert.deepEqual(lines, [
        '/egress/services/both/healthCheck: must have exactly one of path and grpcService',
        '/egress/services/neither/healthCheck: must have exactly one of path and grpcService',
        '/egress/services/plain/healthCheck/grpcService: a gRPC health check needs protocol: http2',
      ]);
    });

    it('fills every default from {}', () => {
      assert.deepEqual(validateConfig({}), {
        admin: { enabled: true, host: '0.0.0.0', port: 15000 },
        ingress: {
          enabled: true,
          host: '0.0.0.0',
          port: 15006,
          http2: true,
          target: 'http://127.0.0.1:8080',
          timeoutMs: 30000,
          targetProtocol: 'http1',
          openapiStrict: false,
          validateResponses: false,
          maxBodyBytes: 1048576,
          rateLimits: [],
          routes: [],
        },
        egress: {
          enabled: true,
          host: '127.0.0.1',
          port: 15001,
          http2: true,
          maxRetryBodyBytes: 1048576,
          services: {},
          routes: [],
        },
        kafka: {
          bootstrap: ['127.0.0.1:9092'],
          clientId: 'mesh-sidecar',
          connectionTimeoutMs: 3000,
          authenticationTimeoutMs: 10000,
          requestTimeoutMs: 30000,
          retry: { retries: 5, initialBackoffMs: 300, maxBackoffMs: 30000 },
          healthCheckIntervalMs: 10000,
          onStartupFailure: 'exit',
        },
        bridge: {
          enabled: false,
          host: '127.0.0.1',
          port: 15002,
          maxBodyBytes: 4194304,
          maxRecordsPerRequest: 10000,
          maxInFlightBytes: 67108864,
          deliveryTimeoutMs: 30000,
          autoCreateTopics: false,
          topicAdmin: false,
          metadataMaxAgeMs: 30000,
          idempotency: { windowMs: 600000, maxEntries: 10000 },
          producer: { compression: 'none', maxBatchRecords: 1000, maxBatchBytes: 1048576, retries: 5 },
          topics: {},
          consumerIdleTimeoutMs: 300000,
          maxConsumers: 100,
          lightmesh: {
            serviceId: 'mesh-sidecar',
            injectCallerId: false,
            copyAuthorizationHeader: false,
            audit: { enabled: false, target: 'log', topic: 'sidecar-audit' },
          },
        },
        subscriptions: [],
        processors: [],
        shutdown: { drainDelayMs: 5000, timeoutMs: 20000 },
        log: { level: 'info' },
        telemetry: { serviceName: 'mesh-sidecar' },
      });
    });

    it('keeps given values and fills the rest of a section', () => {
      const config = validateConfig({
        admin: { port: 0, tls: { cert: '/tls/tls.crt', key: '/tls/tls.key', clientCa: '/tls/ca.crt' } },
      });
      assert.deepEqual(config.admin, {
        enabled: true,
        host: '0.0.0.0',
        port: 0,
        tls: { cert: '/tls/tls.crt', key: '/tls/tls.key', clientCa: '/tls/ca.crt' },
      });
    });

    it('returns a deeply frozen config', () => {
      const config = validateConfig({});
      assert.ok(Object.isFrozen(config));
      assert.ok(Object.isFrozen(config.kafka.bootstrap));
      // ES modules run in strict mode: writing to a frozen object throws.
      assert.throws(() => {
        (config.admin as { port: number }).port = 1;
      }, TypeError);
      assert.throws(() => {
        (config.kafka.bootstrap as string[]).push('other:9092');
      }, TypeError);
    });

    it('does not share default objects between results', () => {
      const first = validateConfig({});
      const second = validateConfig({});
      assert.notEqual(first.kafka.bootstrap, second.kafka.bootstrap);
      assert.notEqual(first.admin, second.admin);
    });

    it('never mutates or freezes the caller object', () => {
      const doc = { admin: { port: 1234 }, kafka: { bootstrap: ['a:1'] } };
      const before = structuredClone(doc);
      const config = validateConfig(doc);
      assert.deepEqual(doc, before);
      assert.ok(!Object.isFrozen(doc.admin));
      assert.notEqual(config.kafka.bootstrap, doc.kafka.bootstrap);
    });

    it('reports an unknown key, a wrong type and a bad port as exactly three problems', () => {
      assert.deepEqual(
        problemLines(() => validateConfig({ admin: { foo: 1, enabled: 'yes', port: 70000 } })),
        ['/admin/foo: unknown key "foo"', '/admin/enabled: must be boolean', '/admin/port: must be <= 65535'],
      );
    });

    it('reports every problem with a human message, in document order', () => {
      const lines = problemLines(() =>
        validateConfig({
          ingress: { target: 'not a url', timeoutMs: 1.5, tls: { cert: '' } },
          admin: { port: -1 },
          kafka: { bootstrap: ['kafka:9092', 'no-port'] },
          log: { level: 'loud' },
          unknown: {},
        }),
      );
      assert.deepEqual(lines, [
        '/ingress/target: must be a URL',
        '/ingress/timeoutMs: must be integer',
        '/ingress/tls/cert: must not be empty',
        '/ingress/tls/key: is required',
        '/admin/port: must be >= 0',
        '/kafka/bootstrap/1: must be host:port, e.g. kafka-0.kafka:9092',
        '/log/level: must be one of: fatal, error, warn, info, debug, trace, silent',
        '/unknown: unknown key "unknown"',
      ]);
    });

    it('gives one problem per location, the most telling one', () => {
      assert.deepEqual(
        problemLines(() => validateConfig({ log: { level: 3 } })),
        ['/log/level: must be one of: fatal, error, warn, info, debug, trace, silent'],
      );
      assert.deepEqual(
        problemLines(() => validateConfig({ ingress: { target: 'ftp://files' } })),
        ['/ingress/target: must be an http:// or https:// URL'],
      );
    });

    it('reports the root, empty lists and keys needing JSON pointer escapes', () => {
      assert.deepEqual(
        problemLines(() => validateConfig([])),
        ['/: must be object'],
      );
      assert.deepEqual(
        problemLines(() => validateConfig({ kafka: { bootstrap: [] } })),
        ['/kafka/bootstrap: must have at least 1 item'],
      );
      assert.deepEqual(
        problemLines(() => validateConfig({ 'a/b~c': 1 })),
        ['/a~1b~0c: unknown key "a/b~c"'],
      );
    });

    it('does not coerce types', () => {
      assert.deepEqual(
        problemLines(() => validateConfig({ admin: { port: '15000' } })),
        ['/admin/port: must be integer'],
      );
    });

    it('rejects values that are not JSON instead of filling defaults into them', () => {
      assert.deepEqual(
        problemLines(() => validateConfig({ admin: new Map() })),
        ['/admin: must be a JSON value, not Map'],
      );
      assert.deepEqual(
        problemLines(() => validateConfig({ shutdown: { timeoutMs: Infinity } })),
        ['/shutdown/timeoutMs: must be a finite number'],
      );
    });

    it('treats undefined properties as absent', () => {
      assert.equal(validateConfig({ admin: { port: undefined } }).admin.port, 15000);
    });

    it('treats __proto__ as an ordinary (unknown) key', () => {
      const doc = parseConfigText('__proto__:\n  polluted: true\n');
      assert.deepEqual(
        problemLines(() => validateConfig(doc)),
        ['/__proto__: unknown key "__proto__"'],
      );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
  });

  describe('ConfigError', () => {
    it('lists the problems in its message and keeps the file', () => {
      const problems: ConfigProblem[] = [{ pointer: '', message: 'broken' }];
      const error = new ConfigError(problems, 'sidecar.yaml');
      assert.equal(error.name, 'ConfigError');
      assert.equal(error.file, 'sidecar.yaml');
      assert.equal(error.message, 'invalid config file sidecar.yaml (1 problem):\n  /: broken');
      assert.ok(error instanceof Error);
    });
  });

  describe('parseConfigText', () => {
    it('reads YAML and JSON', () => {
      assert.deepEqual(parseConfigText('admin:\n  port: 1\n'), { admin: { port: 1 } });
      assert.deepEqual(parseConfigText('{"admin": {"port": 1}}'), { admin: { port: 1 } });
    });

    it('reads an empty document as an empty config', () => {
      assert.deepEqual(parseConfigText(''), {});
      assert.deepEqual(parseConfigText('# nothing here\n'), {});
    });

    it('reports syntax errors with line and column on the root pointer', () => {
      assert.throws(
        () => parseConfigText('admin:\n  port: 1\n  host: a: b\n', 'sidecar.yaml'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.file, 'sidecar.yaml');
          assert.equal(err.problems.length, 1);
          assert.equal(err.problems[0].pointer, '');
          assert.match(err.problems[0].message, /^invalid YAML at sidecar\.yaml:3:\d+: /);
          return true;
        },
      );
      assert.match(
        problemLines(() => parseConfigText('{"a": 1,,}'))[0],
        /^\/: invalid YAML at line 1, column \d+: /,
      );
    });

    it('rejects duplicate keys and multiple documents', () => {
      assert.match(problemLines(() => parseConfigText('a: 1\na: 2\n'))[0], /line 2, column 1: .*unique/);
      assert.deepEqual(
        problemLines(() => parseConfigText('a: 1\n---\nb: 2\n')),
        ['/: invalid YAML at line 2, column 1: a config file must hold a single document (remove "---")'],
      );
    });
  });

  describe('interpolateEnv', () => {
    it('substitutes variables and defaults inside strings', () => {
      const doc = { a: 'http://${HOST}:${PORT:-80}/x', b: ['${EMPTY:-fallback}', '${UNSET:-}'] };
      assert.deepEqual(interpolateEnv(doc, { HOST: 'app', EMPTY: '' }, {}), {
        a: 'http://app:80/x',
        b: ['fallback', ''],
      });
    });

    it('uses an empty value when there is no default', () => {
      assert.deepEqual(interpolateEnv({ a: 'x${EMPTY}y' }, { EMPTY: '' }, {}), { a: 'xy' });
    });

    it('reads $${ as a literal ${', () => {
      assert.deepEqual(interpolateEnv({ a: '$${HOME} and $${X:-y}', b: '$$x' }, { HOME: '/root' }, {}), {
        a: '${HOME} and ${X:-y}',
        b: '$$x',
      });
    });

    it('types a whole-string reference as a YAML scalar', () => {
      const doc = parseConfigText(
        'admin:\n  port: ${PORT}\n  enabled: ${ENABLED:-true}\nlabel: "v${PORT}"\n',
      );
      assert.deepEqual(interpolateEnv(doc, { PORT: '8080' }, {}), {
        admin: { port: 8080, enabled: true },
        label: 'v8080',
      });
      assert.deepEqual(
        interpolateEnv({ a: '${X}', b: '${Y}', c: '${Z}' }, { X: '[1]', Y: 'a: b', Z: '~' }, {}),
        {
          a: '[1]',
          b: 'a: b',
          c: null,
        },
      );
    });

    it('keeps a whole-string reference a string where the schema wants a string', () => {
      const config = validateConfig(
        interpolateEnv(parseConfigText('kafka:\n  clientId: ${ID}\nadmin:\n  port: ${PORT}\n'), {
          ID: '1234',
          PORT: '9000',
        }),
      );
      assert.equal(config.kafka.clientId, '1234');
      assert.equal(config.admin.port, 9000);
    });

    it('never interpolates keys, nor the substituted values again', () => {
      assert.deepEqual(interpolateEnv({ '${KEY}': '${A}' }, { KEY: 'k', A: '${B}', B: 'b' }, {}), {
        '${KEY}': '${B}',
      });
    });

    it('reports every unset variable with its pointer and name', () => {
      assert.deepEqual(
        problemLines(() =>
          interpolateEnv({ admin: { host: '${HOST}' }, list: ['ok', 'x-${MISSING}'] }, {}, {}),
        ),
        [
          '/admin/host: environment variable HOST is not set (write ${HOST:-default} to give a default)',
          '/list/1: environment variable MISSING is not set (write ${MISSING:-default} to give a default)',
        ],
      );
    });

    it('reports malformed references', () => {
      assert.deepEqual(
        problemLines(() => interpolateEnv({ a: '${1X}', b: 'x${OPEN', c: '${A:-${B}}' }, {}, {})),
        [
          '/a: invalid reference "${1X}": "1X" is not a variable name',
          '/b: unterminated reference "${OPEN" (write $${ for a literal ${)',
          '/c: invalid reference "${A:-${B}": defaults cannot contain references',
        ],
      );
    });

    it('returns a new document', () => {
      const doc = { a: { b: '${X}' } };
      const result = interpolateEnv(doc, { X: 'y' });
      assert.deepEqual(doc, { a: { b: '${X}' } });
      assert.deepEqual(result, { a: { b: 'y' } });
    });
  });

  describe('applyEnvOverrides', () => {
    const file = {
      ingress: { target: 'http://file:1' },
      kafka: { bootstrap: ['file:9092'], clientId: 'from-file' },
      log: { level: 'warn' },
    };

    it('lets the well-known variables win over the file', () => {
      const env = {
        APP_URL: 'http://app:3000',
        KAFKA_BOOTSTRAP: ' k1:9092, ,k2:9092,',
        LOG_LEVEL: 'debug',
        OTEL_SERVICE_NAME: 'orders',
      };
      assert.deepEqual(applyEnvOverrides(file, env), {
        ingress: { target: 'http://app:3000' },
        kafka: { bootstrap: ['k1:9092', 'k2:9092'], clientId: 'from-file' },
        log: { level: 'debug' },
        telemetry: { serviceName: 'orders' },
      });
      assert.deepEqual(file.kafka.bootstrap, ['file:9092'], 'the input is not mutated');
    });

    it('ignores unset and empty variables', () => {
      assert.deepEqual(applyEnvOverrides(file, { LOG_LEVEL: '', KAFKA_BOOTSTRAP: ' , ' }), file);
    });

    it('takes service.name from OTEL_RESOURCE_ATTRIBUTES when OTEL_SERVICE_NAME is unset', () => {
      const env = { OTEL_RESOURCE_ATTRIBUTES: 'team=a,service.name=my%20svc' };
      assert.deepEqual(applyEnvOverrides({}, env), { telemetry: { serviceName: 'my svc' } });
      assert.deepEqual(applyEnvOverrides({}, { ...env, OTEL_SERVICE_NAME: 'wins' }), {
        telemetry: { serviceName: 'wins' },
      });
    });

    it('leaves a section that is not an object for validation to report', () => {
      assert.deepEqual(applyEnvOverrides({ log: 'loud' }, { LOG_LEVEL: 'debug' }), { log: 'loud' });
    });

    it('does not put UPSTREAM_URL in the document', () => {
      assert.deepEqual(applyEnvOverrides({}, { UPSTREAM_URL: 'http://up:80' }), {});
      assert.equal(zeroConfigUpstream({ UPSTREAM_URL: ' http://up:80 ' }), 'http://up:80');
      assert.equal(zeroConfigUpstream({ UPSTREAM_URL: '' }), undefined);
      assert.equal(zeroConfigUpstream({}), undefined);
    });
  });

  describe('loadConfig', () => {
    let dir: string;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mesh-config-'));
    });

    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('loads a YAML file', async () => {
      const file = join(dir, 'sidecar.yaml');
      await writeFile(file, 'admin:\n  port: ${ADMIN_PORT:-0}\nlog:\n  level: warn\n');
      const config = await loadConfig({ file, env: {} });
      assert.equal(config.admin.port, 0);
      assert.equal(config.log.level, 'warn');
      assert.equal(config.ingress.port, 15006);
    });

    it('loads a JSON file', async () => {
      const file = join(dir, 'sidecar.json');
      await writeFile(file, JSON.stringify({ ingress: { port: 0, target: 'https://app:8443' } }));
      const config = await loadConfig({ file, env: {} });
      assert.equal(config.ingress.port, 0);
      assert.equal(config.ingress.target, 'https://app:8443');
    });

    it('runs on defaults without a file', async () => {
      assert.deepEqual(await loadConfig({ env: {} }), validateConfig({}));
    });

    it('applies environment overrides over the file', async () => {
      const file = join(dir, 'overridden.yaml');
      await writeFile(
        file,
        'ingress:\n  target: http://file:1\nkafka:\n  bootstrap: [file:9092]\nlog:\n  level: warn\n',
      );
      const config = await loadConfig({
        file,
        env: { APP_URL: 'http://app:3000', KAFKA_BOOTSTRAP: 'k1:9092,k2:9092', LOG_LEVEL: 'trace' },
      });
      assert.equal(config.ingress.target, 'http://app:3000');
      assert.deepEqual(config.kafka.bootstrap, ['k1:9092', 'k2:9092']);
      assert.equal(config.log.level, 'trace');
    });

    it('reports interpolation and validation problems together, naming the file and env sources', async () => {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, 'admin:\n  host: ${ADMIN_HOST}\n  port: 99999\n');
      await assert.rejects(loadConfig({ file, env: { LOG_LEVEL: 'loud' } }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.file, file);
        assert.deepEqual(formatProblems(err.problems), [
          '/admin/host: environment variable ADMIN_HOST is not set (write ${ADMIN_HOST:-default} to give a default)',
          '/admin/port: must be <= 65535',
          '/log/level: must be one of: fatal, error, warn, info, debug, trace, silent (from LOG_LEVEL)',
        ]);
        return true;
      });
    });

    it('ignores an unset variable in a value that an override replaces', async () => {
      const file = join(dir, 'replaced.yaml');
      await writeFile(file, 'log:\n  level: ${LEVEL}\n');
      assert.equal((await loadConfig({ file, env: { LOG_LEVEL: 'error' } })).log.level, 'error');
    });

    it('reports a missing file as one root problem', async () => {
      const file = join(dir, 'missing.yaml');
      assert.deepEqual(await asyncProblemLines(() => loadConfig({ file, env: {} })), [
        `/: file not found: ${file}`,
      ]);
    });
  });

  describe('redaction', () => {
    const schema: JsonSchema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        password: { type: 'string', 'x-secret': true },
        nested: { $ref: '#/definitions/Credentials' },
        list: { type: 'array', items: { $ref: '#/definitions/Credentials' } },
        headers: { type: 'object', additionalProperties: { type: 'string', 'x-secret': true } },
      },
      definitions: {
        Credentials: {
          type: 'object',
          properties: { user: { type: 'string' }, token: { 'x-secret': true } },
        },
      },
    };

    it('replaces every x-secret value, through $ref, arrays and additionalProperties', () => {
      const value = {
        name: 'n',
        password: 'p',
        nested: { user: 'u', token: 't' },
        list: [{ user: 'a', token: 'x' }, { user: 'b' }],
        headers: { authorization: 'Bearer x' },
        unknown: 'kept',
      };
      assert.deepEqual(redactWithSchema(value, schema), {
        name: 'n',
        password: '***',
        nested: { user: 'u', token: '***' },
        list: [{ user: 'a', token: '***' }, { user: 'b' }],
        headers: { authorization: '***' },
        unknown: 'kept',
      });
      assert.equal(value.password, 'p', 'the input is not changed');
    });

    it('copies the config unchanged while no field is secret', () => {
      const config = validateConfig({});
      const redacted = redactConfig(config);
      assert.deepEqual(redacted, config);
      assert.ok(!Object.isFrozen(redacted));
    });
  });

  describe('schema and types', () => {
    it('keeps config.generated.ts in sync with the schema (run npm run gen:config-types)', async () => {
      assert.equal(readFileSync(generatedTypesFile, 'utf8'), await generateConfigTypes());
    });

    // The `satisfies` tables fail type-checking when a key is missing or extra in the generated types;
    // the test then checks the same keys against the schema and the defaults validation fills in.
    const typeKeys = {
      admin: { enabled: true, host: true, port: true, tls: true } satisfies Record<keyof AdminConfig, true>,
      ingress: {
        enabled: true,
        host: true,
        port: true,
        http2: true,
        target: true,
        timeoutMs: true,
        targetProtocol: true,
        tls: true,
        openapi: true,
        openapiStrict: true,
        validateResponses: true,
        maxBodyBytes: true,
        maxConcurrentRequests: true,
        jwt: true,
        rateLimits: true,
        auditLog: true,
        routes: true,
      } satisfies Record<keyof IngressConfig, true>,
      egress: {
        enabled: true,
        host: true,
        port: true,
        http2: true,
        tls: true,
        maxRetryBodyBytes: true,
        services: true,
        routes: true,
        serviceIds: true,
      } satisfies Record<keyof EgressConfig, true>,
      kafka: {
        bootstrap: true,
        clientId: true,
        tls: true,
        sasl: true,
        connectionTimeoutMs: true,
        authenticationTimeoutMs: true,
        requestTimeoutMs: true,
        retry: true,
        healthCheckIntervalMs: true,
        onStartupFailure: true,
      } satisfies Record<keyof KafkaConfig, true>,
      bridge: {
        enabled: true,
        host: true,
        port: true,
        tls: true,
        maxBodyBytes: true,
        maxRecordsPerRequest: true,
        maxInFlightBytes: true,
        deliveryTimeoutMs: true,
        autoCreateTopics: true,
        topicAdmin: true,
        metadataMaxAgeMs: true,
        idempotency: true,
        producer: true,
        topics: true,
        consumerIdleTimeoutMs: true,
        maxConsumers: true,
        lightmesh: true,
      } satisfies Record<keyof BridgeConfig, true>,
      // An array section: the keys are those of one entry.
      subscriptions: {
        name: true,
        topics: true,
        topicPattern: true,
        group: true,
        path: true,
        mode: true,
        maxBatch: true,
        maxBatchWaitMs: true,
        ordering: true,
        maxConcurrency: true,
        timeoutMs: true,
        retry: true,
        deadLetterTopic: true,
        onPoison: true,
        autoOffsetReset: true,
        commitIntervalMs: true,
        commitRecords: true,
        lightmesh: true,
      } satisfies Record<keyof MeshConfig['subscriptions'][number], true>,
      processors: {
        name: true,
        topics: true,
        group: true,
        path: true,
        outputTopics: true,
        guarantee: true,
        transactionalIdPrefix: true,
        mode: true,
        maxBatch: true,
        ordering: true,
        maxConcurrency: true,
        timeoutMs: true,
        retry: true,
        deadLetterTopic: true,
        onPoison: true,
        autoOffsetReset: true,
        commitRecords: true,
        sessionTimeoutMs: true,
      } satisfies Record<keyof MeshConfig['processors'][number], true>,
      shutdown: { drainDelayMs: true, timeoutMs: true } satisfies Record<keyof ShutdownConfig, true>,
      log: { level: true } satisfies Record<keyof LogConfig, true>,
      telemetry: { serviceName: true } satisfies Record<keyof TelemetryConfig, true>,
    } satisfies Record<keyof MeshConfig, unknown>;
    const tlsKeys = { cert: true, key: true, clientCa: true } satisfies Record<keyof TlsConfig, true>;

    it('has the same sections and keys in the types, the schema and the defaults', () => {
      const config = validateConfig({}) as unknown as Record<string, Record<string, unknown>>;
      const sections = properties(configSchema);
      assert.deepEqual(Object.keys(sections), Object.keys(typeKeys));
      assert.deepEqual(Object.keys(config), Object.keys(typeKeys));
      for (const [name, keys] of Object.entries(typeKeys)) {
        const section = sectionEntrySchema(sections[name]);
        const schemaKeys = Object.keys(properties(section));
        assert.deepEqual(schemaKeys, Object.keys(keys), name);
        if (sections[name].type === 'array') {
          assert.deepEqual(config[name], [], `default of ${name}`);
          continue;
        }
        const defaulted = schemaKeys.filter((key) => 'default' in properties(section)[key]);
        assert.deepEqual(Object.keys(config[name]), defaulted, `defaults of ${name}`);
      }
      const tls = (configSchema.definitions as Record<string, JsonSchema>).Tls;
      assert.deepEqual(Object.keys(properties(tls)), Object.keys(tlsKeys));
    });

    it('documents every property with a title and a description', () => {
      const undocumented: string[] = [];
      const visit = (schema: JsonSchema, path: string): void => {
        for (const [key, child] of Object.entries((schema.properties as Record<string, JsonSchema>) ?? {})) {
          if (typeof child.description !== 'string' || typeof child.title !== 'string')
            undocumented.push(path + key);
          visit(child, `${path}${key}.`);
        }
      };
      visit(configSchema, '');
      for (const [name, definition] of Object.entries(
        configSchema.definitions as Record<string, JsonSchema>,
      )) {
        visit(definition, `definitions.${name}.`);
      }
      assert.deepEqual(undocumented, []);
    });

    it('closes every object (additionalProperties: false)', () => {
      const open: string[] = [];
      const visit = (schema: JsonSchema, path: string): void => {
        const entries = schema.additionalProperties;
        // A map (`additionalProperties` is a schema) is closed when the schema of its values is.
        if (typeof entries === 'object' && entries !== null) visit(entries as JsonSchema, `${path}/*`);
        else if (schema.type === 'object' && entries !== false) open.push(path || '/');
        for (const [key, child] of Object.entries((schema.properties as Record<string, JsonSchema>) ?? {})) {
          visit(child, `${path}/${key}`);
        }
      };
      visit(configSchema, '');
      for (const [name, definition] of Object.entries(
        configSchema.definitions as Record<string, JsonSchema>,
      )) {
        visit(definition, `#/definitions/${name}`);
      }
      assert.deepEqual(open, []);
    });

    // docs/configuration.md's key tables are generated from this schema (npm run gen:docs); the
    // drift test in scripts/gen-docs.test.ts fails when they are out of date.
  });
});

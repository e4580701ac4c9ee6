/**
 * `mesh-sidecar convert-lightmesh-config DIR`: reads a light-mesh Kafka sidecar's
 * `kafka-producer.yml`, `kafka-consumer.yml` and `values.yml` from DIR and prints the equivalent
 * mesh-sidecar config. `${name:default}` placeholders are resolved against `values.yml` (then their
 * default), as light-4j does. Every setting without an equivalent is reported as a warning.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

export interface ConversionResult {
  readonly config: Record<string, unknown>;
  /** One line per setting that could not be mapped (`file: key: why`). */
  readonly warnings: string[];
}

type Yaml = Record<string, unknown>;

const PLACEHOLDER = /\$\{([^}:]+)(?::([^}]*))?\}/g;

/** Resolves light-4j `${name:default}` placeholders in every string of `value`. */
function resolvePlaceholders(value: unknown, values: Yaml): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{([^}:]+)(?::([^}]*))?\}$/.exec(value.trim());
    if (whole) {
      const [, name, fallback] = whole;
      if (name in values) return values[name];
      if (fallback === undefined) return undefined;
      // A lone placeholder takes the type its default has in YAML (true, 100, ...).
      return parse(fallback) as unknown;
    }
    return value.replace(PLACEHOLDER, (_match, name: string, fallback: string | undefined) =>
      name in values ? String(values[name]) : (fallback ?? ''),
    );
  }
  if (Array.isArray(value)) return value.map((item) => resolvePlaceholders(item, values));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, resolvePlaceholders(item, values)]),
    );
  }
  return value;
}

function readYaml(dir: string, name: string): Yaml | undefined {
  const file = join(dir, name);
  if (!existsSync(file)) return undefined;
  const parsed = parse(readFileSync(file, 'utf8')) as unknown;
  return parsed !== null && typeof parsed === 'object' ? (parsed as Yaml) : {};
}

/** light-mesh `kafka-producer.yml` / `kafka-consumer.yml` with `values.yml` applied. */
function loadConfigFile(dir: string, name: string, prefix: string, values: Yaml): Yaml | undefined {
  const raw = readYaml(dir, name);
  if (raw === undefined) return undefined;
  const resolved = resolvePlaceholders(raw, values) as Yaml;
  // values.yml may also set a top-level key directly (`kafka-consumer.topic: x`).
  for (const [key, value] of Object.entries(values)) {
    if (key.startsWith(`${prefix}.`) && !key.slice(prefix.length + 1).includes('.')) {
      const field = key.slice(prefix.length + 1);
      if (field in resolved && field !== 'properties') resolved[field] = value;
    }
  }
  return resolved;
}

/** A YAML scalar as text (objects and lists as JSON). */
const text = (value: unknown): string =>
  typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint'
      ? String(value)
      : JSON.stringify(value);
const asString = (value: unknown): string | undefined =>
  value === undefined || value === null ? undefined : text(value);
const asBoolean = (value: unknown): boolean | undefined =>
  value === undefined || value === null ? undefined : text(value).toLowerCase() === 'true';
const asInteger = (value: unknown): number | undefined => {
  if (value === undefined || value === null || text(value).trim() === '') return undefined;
  const n = Number(value);
  return Number.isInteger(n) ? n : undefined;
};

function bootstrapOf(value: unknown): string[] | undefined {
  const text = asString(value);
  if (!text) return undefined;
  return text
    .split(',')
    .map((entry) => entry.trim().replace(/^[A-Za-z_]+:\/\//, ''))
    .filter((entry) => entry.length > 0);
}

function dataFormat(
  value: unknown,
  where: string,
  warn: (where: string, why: string) => void,
): 'json' | 'string' | 'binary' | undefined {
  const format = asString(value)?.toLowerCase();
  if (format === undefined) return undefined;
  if (format === 'json' || format === 'jsonschema') return 'json';
  if (format === 'string') return 'string';
  if (format === 'binary' || format === 'bytes') return 'binary';
  warn(where, `format "${format}" needs a schema registry; mesh-sidecar shows such records as json`);
  return 'json';
}

/** Client properties that are what mesh-sidecar does anyway: no warning when they have this value. */
const IMPLIED_PROPERTIES: Record<string, (value: string) => boolean> = {
  'key.serializer': (v) => v.endsWith('ByteArraySerializer'),
  'value.serializer': (v) => v.endsWith('ByteArraySerializer'),
  'key.deserializer': (v) => v.endsWith('ByteArrayDeserializer'),
  'value.deserializer': (v) => v.endsWith('ByteArrayDeserializer'),
  acks: (v) => v === 'all' || v === '-1',
  'enable.idempotence': (v) => v === 'true',
  'enable.auto.commit': (v) => v === 'false',
};

function auditOf(file: Yaml): { enabled: boolean; target: 'topic' | 'log'; topic: string } | undefined {
  if (file.auditEnabled === undefined && file.auditTarget === undefined && file.auditTopic === undefined)
    return undefined;
  const target = asString(file.auditTarget)?.toLowerCase() === 'topic' ? 'topic' : 'log';
  return {
    enabled: asBoolean(file.auditEnabled) ?? false,
    target,
    topic: asString(file.auditTopic) ?? 'sidecar-audit',
  };
}

export function convertLightmeshConfig(dir: string): ConversionResult {
  const warnings: string[] = [];
  const values = readYaml(dir, 'values.yml') ?? {};
  const producer = loadConfigFile(dir, 'kafka-producer.yml', 'kafka-producer', values);
  const consumer = loadConfigFile(dir, 'kafka-consumer.yml', 'kafka-consumer', values);
  if (producer === undefined && consumer === undefined) {
    throw new Error(`${dir} has neither kafka-producer.yml nor kafka-consumer.yml`);
  }
  const warnIn = (file: string) => (key: string, why: string) => warnings.push(`${file}: ${key}: ${why}`);

  // Which parts run: values.yml's startup hooks when it lists them, else the files present.
  const hooks = (values['service.com.networknt.server.StartupHookProvider'] as unknown[] | undefined)?.map(
    String,
  );
  const hook = (name: string) => hooks?.some((entry) => entry.endsWith(`.${name}`));
  const produceOn = hooks ? Boolean(hook('ProducerStartupHook')) : producer !== undefined;
  const activeOn = hooks ? Boolean(hook('ActiveConsumerStartupHook')) : false;
  const reactiveOn = hooks
    ? Boolean(hook('ReactiveConsumerStartupHook'))
    : consumer !== undefined && consumer.topic !== undefined;
  for (const entry of hooks ?? []) {
    if (/(Producer|ActiveConsumer|ReactiveConsumer)StartupHook$/.test(entry)) continue;
    if (/AdminClientStartupHook$/.test(entry)) continue;
    warnIn('values.yml')(
      'service.com.networknt.server.StartupHookProvider',
      `${entry} has no mesh-sidecar equivalent (ksqlDB and Kafka Streams consumers are not supported)`,
    );
  }
  for (const key of Object.keys(values)) {
    if (key.startsWith('kafka-producer.') || key.startsWith('kafka-consumer.')) continue;
    if (key.startsWith('service.com.networknt.server.')) continue;
    if (key === 'server.serviceId') continue;
    warnIn('values.yml')(key, 'not a kafka-producer or kafka-consumer setting; not converted');
  }
  const serviceId = asString(values['server.serviceId']);

  const config: Record<string, unknown> = {
    // The light-mesh Kafka sidecar proxies no HTTP traffic: only its Kafka parts are converted.
    ingress: { enabled: false },
  };
  const kafka: Record<string, unknown> = {};
  const bridge: Record<string, unknown> = { enabled: produceOn || activeOn };
  const bridgeLightmesh: Record<string, unknown> = {};
  if (serviceId) bridgeLightmesh.serviceId = serviceId;

  const properties = (file: Yaml, name: string, handle: (key: string, value: string) => boolean) => {
    const warn = warnIn(name);
    for (const [key, raw] of Object.entries((file.properties as Yaml | undefined) ?? {})) {
      if (raw === undefined || raw === null) continue;
      const value = text(raw);
      if (key === 'bootstrap.servers') {
        const list = bootstrapOf(value);
        if (list && kafka.bootstrap === undefined) kafka.bootstrap = list;
        else if (list && JSON.stringify(list) !== JSON.stringify(kafka.bootstrap)) {
          warn(
            `properties.${key}`,
            `differs from the producer's; mesh-sidecar uses one cluster (${String(kafka.bootstrap)})`,
          );
        }
        continue;
      }
      if (IMPLIED_PROPERTIES[key]?.(value)) continue;
      if (handle(key, value)) continue;
      if (key.startsWith('schema.registry') || key.startsWith('basic.auth')) {
        warn(`properties.${key}`, 'mesh-sidecar uses no schema registry');
      } else if (key.startsWith('security.') || key.startsWith('sasl.') || key.startsWith('ssl.')) {
        warn(`properties.${key}`, 'set Kafka TLS/SASL in the kafka section by hand');
      } else {
        warn(`properties.${key}`, `Kafka client property with no mesh-sidecar setting (value ${value})`);
      }
    }
  };

  if (producer) {
    const warn = warnIn('kafka-producer.yml');
    const producerSettings: Record<string, unknown> = {};
    properties(producer, 'kafka-producer.yml', (key, value) => {
      if (key === 'retries' && asInteger(value) !== undefined && asInteger(value)! >= 1) {
        producerSettings.retries = asInteger(value);
        return true;
      }
      if (key === 'compression.type' && (value === 'gzip' || value === 'none')) {
        producerSettings.compression = value;
        return true;
      }
      if (key === 'max.message.size' || key === 'max.request.size') {
        if (asInteger(value)) bridge.maxBodyBytes = Math.max(asInteger(value)!, 1);
        return true;
      }
      return false;
    });
    if (Object.keys(producerSettings).length > 0) bridge.producer = producerSettings;
    for (const [key, value] of Object.entries(producer)) {
      switch (key) {
        case 'properties':
          break;
        case 'injectCallerId':
          bridgeLightmesh.injectCallerId = asBoolean(value) ?? false;
          break;
        case 'auditEnabled':
        case 'auditTarget':
        case 'auditTopic':
          bridgeLightmesh.audit = auditOf(producer);
          break;
        case 'topic':
          warn(key, 'mesh-sidecar has no default topic: the topic is in the produce path');
          break;
        case 'injectOpenTracing':
          if (asBoolean(value))
            warn(key, 'mesh-sidecar always writes W3C trace context (traceparent) instead');
          break;
        default:
          warn(key, `no mesh-sidecar equivalent (value ${JSON.stringify(value)})`);
      }
    }
  }

  if (consumer) {
    const warn = warnIn('kafka-consumer.yml');
    const subscription: Record<string, unknown> = { name: 'lightmesh-reactive', mode: 'lightmesh' };
    const lightmesh: Record<string, unknown> = {};
    if (serviceId) lightmesh.serviceId = serviceId;
    properties(consumer, 'kafka-consumer.yml', (key, value) => {
      if (key === 'group.id') {
        subscription.group = value;
        return true;
      }
      if (key === 'auto.offset.reset' && (value === 'earliest' || value === 'latest')) {
        subscription.autoOffsetReset = value;
        return true;
      }
      if (key === 'max.poll.records' && asInteger(value)) {
        subscription.maxBatch = Math.min(10_000, Math.max(1, asInteger(value)!));
        return true;
      }
      return false;
    });
    for (const [key, value] of Object.entries(consumer)) {
      switch (key) {
        case 'properties':
          break;
        case 'topic': {
          const topics = (asString(value) ?? '')
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean);
          if (topics.length > 0) subscription.topics = topics;
          break;
        }
        case 'keyFormat':
        case 'valueFormat': {
          const format = dataFormat(value, key, warn);
          if (format) lightmesh[key] = format;
          break;
        }
        case 'deadLetterEnabled':
          lightmesh.deadLetterEnabled = asBoolean(value) ?? true;
          break;
        case 'deadLetterTopicExt':
          if (asString(value)) lightmesh.deadLetterTopicExt = asString(value);
          break;
        case 'batchRollbackThreshold':
          if (asInteger(value) !== undefined)
            lightmesh.batchRollbackThreshold = Math.min(100, Math.max(0, asInteger(value)!));
          break;
        case 'auditEnabled':
        case 'auditTarget':
        case 'auditTopic':
          lightmesh.audit = auditOf(consumer);
          break;
        case 'backendApiHost': {
          const host = asString(value);
          if (host) config.ingress = { enabled: false, target: host.replace(/\/+$/, '') };
          break;
        }
        case 'backendApiPath':
          if (asString(value)) subscription.path = asString(value);
          break;
        case 'waitPeriod':
          if (asInteger(value) !== undefined)
            subscription.maxBatchWaitMs = Math.min(60_000, Math.max(0, asInteger(value)!));
          break;
        case 'instanceTimeoutMs':
          if (asInteger(value)) bridge.consumerIdleTimeoutMs = asInteger(value);
          break;
        case 'maxConsumerThreads':
          if (activeOn && asInteger(value)) bridge.maxConsumers = asInteger(value);
          else warn(key, 'no equivalent for the reactive consumer (see subscriptions.maxConcurrency)');
          break;
        default:
          warn(key, `no mesh-sidecar equivalent (value ${JSON.stringify(value)})`);
      }
    }
    if (reactiveOn) {
      subscription.group ??= 'group1';
      subscription.path ??= '/kafka/records';
      if (Object.keys(lightmesh).length > 0) subscription.lightmesh = lightmesh;
      if (subscription.topics === undefined) {
        warn('topic', 'no topic set: the reactive consumer is not converted');
      } else {
        config.subscriptions = [subscription];
      }
    }
  }
  if (Object.keys(bridgeLightmesh).length > 0) bridge.lightmesh = bridgeLightmesh;
  if (Object.keys(kafka).length > 0) config.kafka = kafka;
  config.bridge = bridge;
  return { config, warnings };
}

/** The CLI command: the config as YAML on `out`, warnings on `err`; resolves the exit code. */
export function runConvertLightmesh(
  dir: string,
  out: (text: string) => void,
  err: (line: string) => void,
): number {
  let result: ConversionResult;
  try {
    result = convertLightmeshConfig(dir);
  } catch (error) {
    err(`convert-lightmesh-config: ${(error as Error).message}`);
    return 2;
  }
  for (const warning of result.warnings) err(`warning: ${warning}`);
  out(
    `# mesh-sidecar config converted from the light-mesh Kafka sidecar config in ${dir}\n${stringify(result.config)}`,
  );
  return 0;
}

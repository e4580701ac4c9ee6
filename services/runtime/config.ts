/**
 * The config document: parsing, `${VAR}` interpolation, environment overrides, validation against
 * schemas/config.schema.json, redaction. The schema is the single source of truth: the TypeScript
 * types are generated from it (config.generated.ts) and docs/configuration.md describes it.
 *
 * Pipeline (loadConfig): parse → interpolate → env overrides → validate.
 *
 * Interpolation rules (also in docs/configuration.md):
 * - `${VAR}` is replaced by the value of the environment variable VAR; unset is a problem.
 * - `${VAR:-default}` uses `default` when VAR is unset OR empty. The default ends at the first `}`
 *   and cannot contain another reference.
 * - `$${` is a literal `${` (so `$${HOME}` stays `${HOME}`).
 * - Only string values are interpolated, after YAML parsing, so an environment value can never add
 *   structure to the document (no key injection) and is never interpolated again.
 * - When the whole string is exactly one reference, the substituted text is read as a YAML scalar,
 *   so `port: ${PORT}` gives a number and `enabled: ${X:-true}` a boolean. Only numbers, booleans and
 *   `null`/`~` are converted, and never where the schema says the value is a string (a numeric
 *   client id stays a string). Any other text stays a string, exactly as substituted.
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { LineCounter, parseDocument } from 'yaml';
import type { AdminConfig, IngressConfig, MeshConfig } from './config.generated.js';
import { readSchemaText } from './package-files.js';

export type {
  AdminConfig,
  BridgeConfig,
  EgressConfig,
  IngressConfig,
  KafkaConfig,
  LogConfig,
  MeshConfig,
  ShutdownConfig,
  TelemetryConfig,
  TlsConfig,
} from './config.generated.js';

/** What admin and ingress have in common: a listener that can be turned off, bound, and given TLS. */
export type ListenerConfig = Pick<AdminConfig, 'enabled' | 'host' | 'port' | 'tls'>;
// Compile-time guard: every listener section must keep the shared listener shape.
const listenerSectionsShareTheirShape: [IngressConfig, AdminConfig] extends [ListenerConfig, ListenerConfig]
  ? true
  : never = true;
void listenerSectionsShareTheirShape;

export type DeepReadonly<T> = T extends readonly (infer Item)[]
  ? readonly DeepReadonly<Item>[]
  : T extends object
    ? { readonly [Key in keyof T]: DeepReadonly<T[Key]> }
    : T;

/** The validated, defaults-filled and deeply frozen config. */
export type Config = DeepReadonly<MeshConfig>;

export interface ConfigProblem {
  /** JSON pointer of the offending value ('' is the whole document, printed as '/'). */
  pointer: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];
  readonly file?: string;

  constructor(problems: readonly ConfigProblem[], file?: string) {
    const where = file === undefined ? 'config' : `config file ${file}`;
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(
      [`invalid ${where} (${count}):`, ...formatProblems(problems).map((line) => `  ${line}`)].join('\n'),
    );
    this.problems = Object.freeze(problems.map((problem) => Object.freeze({ ...problem })));
    if (file !== undefined) this.file = file;
  }
}

/** A JSON Schema node; keywords are read defensively because schemas are plain JSON. */
export type JsonSchema = { readonly [keyword: string]: unknown };

export const configSchema: JsonSchema = deepFreeze(loadSchemaFile('config.schema.json'));

const REDACTED = '***';

// ---------------------------------------------------------------------------------------------
// Parsing

/** Parses YAML (JSON is YAML). An empty document is an empty config (`{}`). */
export function parseConfigText(text: string, file?: string): unknown {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const location = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return file === undefined ? `line ${line}, column ${col}` : `${file}:${line}:${col}`;
  };
  if (document.errors.length > 0) {
    // One problem per position: a parser reports follow-up errors at the spot of the first one.
    const problems = new Map<number, ConfigProblem>();
    for (const error of document.errors) {
      if (problems.has(error.pos[0])) continue;
      const what =
        error.code === 'MULTIPLE_DOCS'
          ? 'a config file must hold a single document (remove "---")'
          : firstLine(error.message);
      problems.set(error.pos[0], {
        pointer: '',
        message: `invalid YAML at ${location(error.pos[0])}: ${what}`,
      });
    }
    throw new ConfigError([...problems.values()], file);
  }
  if (document.contents === null) return {};
  try {
    return document.toJS() as unknown;
  } catch (err) {
    // toJS refuses alias bombs ("billion laughs") and similar; report instead of crashing.
    throw new ConfigError([{ pointer: '', message: `invalid YAML: ${errorMessage(err)}` }], file);
  }
}

// ---------------------------------------------------------------------------------------------
// Interpolation

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${VAR}` / `${VAR:-default}` in every string value (rules at the top of this file).
 * Returns a new document; throws ConfigError listing every unset variable and bad reference.
 * `schema` decides where a whole-string reference must stay a string; it defaults to the config schema.
 */
export function interpolateEnv(
  doc: unknown,
  env: NodeJS.ProcessEnv,
  schema: JsonSchema = configSchema,
): unknown {
  const { value, problems } = interpolateDocument(doc, env, schema);
  if (problems.length > 0) throw new ConfigError(problems);
  return value;
}

function interpolateDocument(
  doc: unknown,
  env: NodeJS.ProcessEnv,
  schema: JsonSchema,
): { value: unknown; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const walk = (value: unknown, pointer: string, schemas: readonly JsonSchema[]): unknown => {
    if (typeof value === 'string') return interpolateString(value, pointer, schemas, env, schema, problems);
    if (Array.isArray(value)) {
      return value.map((item, index) =>
        walk(item, `${pointer}/${index}`, childSchemas(schemas, index, schema)),
      );
    }
    if (isPlainObject(value)) {
      const copy: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        defineValue(
          copy,
          key,
          walk(item, `${pointer}/${escapePointerToken(key)}`, childSchemas(schemas, key, schema)),
        );
      }
      return copy;
    }
    return value;
  };
  const value = walk(doc, '', expandSchema(schema, schema));
  return { value, problems };
}

function interpolateString(
  text: string,
  pointer: string,
  schemas: readonly JsonSchema[],
  env: NodeJS.ProcessEnv,
  rootSchema: JsonSchema,
  problems: ConfigProblem[],
): unknown {
  let result = '';
  let references = 0;
  let literalText = false;
  let index = 0;
  while (index < text.length) {
    if (text.startsWith('$${', index)) {
      result += '${';
      literalText = true;
      index += 3;
      continue;
    }
    if (!text.startsWith('${', index)) {
      result += text[index];
      literalText = true;
      index += 1;
      continue;
    }
    const end = text.indexOf('}', index + 2);
    if (end < 0) {
      problems.push({
        pointer,
        message: `unterminated reference "${text.slice(index)}" (write $\${ for a literal \${)`,
      });
      return text;
    }
    const body = text.slice(index + 2, end);
    const separator = body.indexOf(':-');
    const name = separator < 0 ? body : body.slice(0, separator);
    const fallback = separator < 0 ? undefined : body.slice(separator + 2);
    if (!VARIABLE_NAME.test(name)) {
      problems.push({
        pointer,
        message: `invalid reference "\${${body}}": "${name}" is not a variable name`,
      });
      return text;
    }
    if (fallback?.includes('${')) {
      problems.push({
        pointer,
        message: `invalid reference "\${${body}}": defaults cannot contain references`,
      });
      return text;
    }
    const envValue = env[name];
    if (envValue !== undefined && (envValue !== '' || fallback === undefined)) {
      result += envValue;
    } else if (fallback !== undefined) {
      result += fallback;
    } else {
      problems.push({
        pointer,
        message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
      });
      return text;
    }
    references += 1;
    index = end + 1;
  }
  if (references === 1 && !literalText && !schemaExpectsOnlyStrings(schemas, rootSchema)) {
    return parseScalar(result);
  }
  return result;
}

/** Reads substituted text the way YAML would read it as a plain scalar, but only for non-strings. */
function parseScalar(text: string): unknown {
  if (/^\s*(null|Null|NULL|~)\s*$/.test(text)) return null;
  const document = parseDocument(text, { prettyErrors: false });
  if (document.errors.length > 0) return text;
  const value: unknown = document.toJS();
  return typeof value === 'number' || typeof value === 'boolean' ? value : text;
}

function schemaExpectsOnlyStrings(schemas: readonly JsonSchema[], rootSchema: JsonSchema): boolean {
  const types = schemas.flatMap((schema) => expandSchema(schema, rootSchema)).flatMap(declaredTypes);
  return types.length > 0 && types.every((type) => type === 'string');
}

function declaredTypes(schema: JsonSchema): string[] {
  const type = schema.type;
  if (typeof type === 'string') return [type];
  return Array.isArray(type) ? type.filter((item): item is string => typeof item === 'string') : [];
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

interface EnvOverride {
  readonly variable: string;
  /** Path of the overridden value, as JSON pointer segments. */
  readonly path: readonly string[];
  readonly value: unknown;
}

/** The well-known variables that override the file, in the order they are applied. */
function envOverrides(env: NodeJS.ProcessEnv): EnvOverride[] {
  const overrides: EnvOverride[] = [];
  // Empty values count as unset: `FOO=` in a manifest usually means "not configured".
  const read = (variable: string): string | undefined => {
    const value = env[variable]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const appUrl = read('APP_URL');
  if (appUrl !== undefined)
    overrides.push({ variable: 'APP_URL', path: ['ingress', 'target'], value: appUrl });
  const bootstrap = read('KAFKA_BOOTSTRAP')
    ?.split(',')
    .map((server) => server.trim())
    .filter((server) => server !== '');
  if (bootstrap !== undefined && bootstrap.length > 0) {
    overrides.push({ variable: 'KAFKA_BOOTSTRAP', path: ['kafka', 'bootstrap'], value: bootstrap });
  }
  const logLevel = read('LOG_LEVEL');
  if (logLevel !== undefined)
    overrides.push({ variable: 'LOG_LEVEL', path: ['log', 'level'], value: logLevel });
  // OpenTelemetry: OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (spec order).
  const serviceName = read('OTEL_SERVICE_NAME');
  const resourceServiceName = resourceAttribute(read('OTEL_RESOURCE_ATTRIBUTES'), 'service.name');
  if (serviceName !== undefined) {
    overrides.push({ variable: 'OTEL_SERVICE_NAME', path: ['telemetry', 'serviceName'], value: serviceName });
  } else if (resourceServiceName !== undefined) {
    overrides.push({
      variable: 'OTEL_RESOURCE_ATTRIBUTES',
      path: ['telemetry', 'serviceName'],
      value: resourceServiceName,
    });
  }
  return overrides;
}

/** One attribute of an OTEL_RESOURCE_ATTRIBUTES list (`key=value,key=value`, values percent-encoded). */
function resourceAttribute(attributes: string | undefined, wanted: string): string | undefined {
  for (const pair of attributes?.split(',') ?? []) {
    const separator = pair.indexOf('=');
    if (separator < 0 || pair.slice(0, separator).trim() !== wanted) continue;
    const raw = pair.slice(separator + 1).trim();
    try {
      return decodeURIComponent(raw) || undefined;
    } catch {
      return raw || undefined;
    }
  }
  return undefined;
}

/**
 * Applies APP_URL, KAFKA_BOOTSTRAP, LOG_LEVEL and OTEL_SERVICE_NAME (or service.name from
 * OTEL_RESOURCE_ATTRIBUTES) on a copy of the document. A section that exists but is not an object is
 * left alone so validation reports it instead of the override hiding it.
 */
export function applyEnvOverrides(doc: unknown, env: NodeJS.ProcessEnv): unknown {
  const result = copyJsonLike(doc);
  if (!isPlainObject(result)) return result;
  for (const { path, value } of envOverrides(env)) {
    const parent = objectAt(result, path.slice(0, -1));
    if (parent !== undefined) defineValue(parent, path[path.length - 1], copyJsonLike(value));
  }
  return result;
}

/** The object at `path`, creating missing ones; undefined when something on the way is not an object. */
function objectAt(
  root: Record<string, unknown>,
  path: readonly string[],
): Record<string, unknown> | undefined {
  let current = root;
  for (const segment of path) {
    const next = Object.hasOwn(current, segment) ? current[segment] : {};
    if (!isPlainObject(next)) return undefined;
    defineValue(current, segment, next);
    current = next;
  }
  return current;
}

/** UPSTREAM_URL: the one upstream of zero-config mode. Read by the sidecar itself, not part of the document. */
export function zeroConfigUpstream(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.UPSTREAM_URL?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/**
 * Zero-config mode (no config file, UPSTREAM_URL set; contract section 1): the defaults with the
 * ingress listener off, so the sidecar runs admin and egress only. A malformed UPSTREAM_URL is a
 * config problem (exit 2).
 */
export function zeroConfigMode(config: Config, upstreamUrl: string): Config {
  let url: URL | undefined;
  try {
    url = new URL(upstreamUrl);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ConfigError([
      { pointer: '', message: `UPSTREAM_URL must be an http:// or https:// URL, got "${upstreamUrl}"` },
    ]);
  }
  return validateConfig({ ...config, ingress: { ...config.ingress, enabled: false } });
}

// ---------------------------------------------------------------------------------------------
// Validation

const ajv = new Ajv({
  strict: true,
  allErrors: true,
  useDefaults: true,
  coerceTypes: false,
  // parentSchema on errors gives us x-pattern-message.
  verbose: true,
});
// ajv-formats is CommonJS; under NodeNext its default import is typed as the module namespace.
(addFormatsModule as unknown as FormatsPlugin)(ajv);
// Annotations only: strict mode rejects unknown keywords, these carry meaning for this module.
ajv.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
ajv.addKeyword({ keyword: 'x-pattern-message', schemaType: 'string' });
const validateDocument = ajv.compile(configSchema);

/**
 * Validates a deep copy of `doc`, fills in defaults and returns it deeply frozen. Throws ConfigError
 * with every problem (one per location, the most telling one).
 */
export function validateConfig(doc: unknown): Config {
  const { config, problems } = checkDocument(doc);
  if (config === undefined) throw new ConfigError(problems);
  return config;
}

function checkDocument(doc: unknown): { config?: Config; problems: ConfigProblem[] } {
  const { value, problems: shapeProblems } = cloneJson(doc);
  const order = documentOrder(value);
  const valid = validateDocument(value);
  const schemaProblems = valid ? [] : (validateDocument.errors ?? []).map(describeError);
  let problems = finishProblems([...shapeProblems, ...schemaProblems], order);
  if (problems.length > 0) return { problems };
  // Rules across fields that JSON Schema (under Ajv's strict mode) does not express well: checked
  // here too, so check-config, start-up and reload all refuse them the same way.
  problems = crossFieldProblems(value as MeshConfig);
  if (problems.length > 0) return { problems };
  return { config: deepFreeze(value) as Config, problems };
}

function crossFieldProblems(config: MeshConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = new Set<string>();
  config.subscriptions.forEach((subscription, index) => {
    const at = `/subscriptions/${index}`;
    if (names.has(subscription.name)) {
      problems.push({ pointer: `${at}/name`, message: `duplicate subscription name "${subscription.name}"` });
    }
    names.add(subscription.name);
    if ((subscription.topics === undefined) === (subscription.topicPattern === undefined)) {
      problems.push({ pointer: at, message: 'must have exactly one of topics and topicPattern' });
    }
    if (subscription.topicPattern !== undefined) {
      try {
        new RegExp(subscription.topicPattern);
      } catch (err) {
        problems.push({
          pointer: `${at}/topicPattern`,
          message: `invalid regular expression: ${(err as Error).message}`,
        });
      }
    }
    if (subscription.onPoison === 'deadLetter' && subscription.deadLetterTopic === undefined) {
      problems.push({ pointer: `${at}/onPoison`, message: 'deadLetter needs deadLetterTopic' });
    }
    if (subscription.retry.initialBackoffMs > subscription.retry.maxBackoffMs) {
      problems.push({ pointer: `${at}/retry/initialBackoffMs`, message: 'must not exceed maxBackoffMs' });
    }
  });
  problems.push(...processorProblems(config));
  problems.push(...egressProblems(config.egress));
  return problems;
}

/** Egress services: a health check is HTTP or gRPC, and gRPC needs HTTP/2 to the endpoints. */
function egressProblems(egress: MeshConfig['egress']): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [name, service] of Object.entries(egress.services)) {
    const check = service?.healthCheck;
    if (check === undefined) continue;
    const at = `/egress/services/${name}/healthCheck`;
    if ((check.path === undefined) === (check.grpcService === undefined)) {
      problems.push({ pointer: at, message: 'must have exactly one of path and grpcService' });
    } else if (check.grpcService !== undefined && service?.protocol !== 'http2') {
      problems.push({ pointer: `${at}/grpcService`, message: 'a gRPC health check needs protocol: http2' });
    }
  }
  return problems;
}

/** Stream processors: unique names, groups of their own, dead letters configured when asked for. */
function processorProblems(config: MeshConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const names = new Set<string>();
  const groups = new Set(config.subscriptions.map((subscription) => subscription.group));
  config.processors.forEach((processor, index) => {
    const at = `/processors/${index}`;
    if (names.has(processor.name)) {
      problems.push({ pointer: `${at}/name`, message: `duplicate processor name "${processor.name}"` });
    }
    names.add(processor.name);
    if (groups.has(processor.group)) {
      problems.push({
        pointer: `${at}/group`,
        message: `group "${processor.group}" is already used by another processor or subscription`,
      });
    }
    groups.add(processor.group);
    if (processor.onPoison === 'deadLetter' && processor.deadLetterTopic === undefined) {
      problems.push({ pointer: `${at}/onPoison`, message: 'deadLetter needs deadLetterTopic' });
    }
    if (processor.retry.initialBackoffMs > processor.retry.maxBackoffMs) {
      problems.push({ pointer: `${at}/retry/initialBackoffMs`, message: 'must not exceed maxBackoffMs' });
    }
  });
  problems.push(...kafkaProblems(config.kafka));
  return problems;
}

/** `kafka.tls` / `kafka.sasl`: a value inline or from a file (not both), and what each mechanism needs. */
function kafkaProblems(kafka: MeshConfig['kafka']): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const oneOf = (at: string, section: object, inline: string, file: string, required: boolean) => {
    const given = [inline, file].filter((key) => Object.hasOwn(section, key));
    if (given.length === 2) problems.push({ pointer: at, message: `give ${inline} or ${file}, not both` });
    else if (required && given.length === 0)
      problems.push({ pointer: at, message: `needs ${inline} or ${file}` });
    return given.length > 0;
  };
  const { tls, sasl } = kafka;
  if (tls !== undefined) {
    oneOf('/kafka/tls', tls, 'ca', 'caFile', false);
    const cert = oneOf('/kafka/tls', tls, 'cert', 'certFile', false);
    const key = oneOf('/kafka/tls', tls, 'key', 'keyFile', false);
    if (cert !== key) problems.push({ pointer: '/kafka/tls', message: 'a client certificate needs its key' });
  }
  if (sasl !== undefined) {
    if (sasl.mechanism === 'oauthbearer') {
      if (sasl.oauthbearer === undefined)
        problems.push({ pointer: '/kafka/sasl/oauthbearer', message: 'is required for oauthbearer' });
      else oneOf('/kafka/sasl/oauthbearer', sasl.oauthbearer, 'clientSecret', 'clientSecretFile', true);
      for (const key of ['username', 'password', 'passwordFile'] as const) {
        if (sasl[key] !== undefined)
          problems.push({ pointer: `/kafka/sasl/${key}`, message: 'is not used by oauthbearer' });
      }
    } else {
      if (sasl.username === undefined)
        problems.push({ pointer: '/kafka/sasl/username', message: `is required for ${sasl.mechanism}` });
      oneOf('/kafka/sasl', sasl, 'password', 'passwordFile', true);
      if (sasl.oauthbearer !== undefined)
        problems.push({ pointer: '/kafka/sasl/oauthbearer', message: `is not used by ${sasl.mechanism}` });
    }
  }
  return problems;
}

interface RankedProblem extends ConfigProblem {
  /** Lower wins when several problems concern the same location. */
  rank: number;
}

// Which failure explains a value best: an enum lists what is allowed, a type says what kind is wanted,
// a format or pattern says what shape; the rest only matters once those are fixed.
const KEYWORD_RANK = ['additionalProperties', 'required', 'enum', 'const', 'type', 'format', 'pattern'];

function describeError(error: ErrorObject): RankedProblem {
  const params = error.params as Record<string, unknown>;
  const rankOf = (keyword: string): number => {
    const rank = KEYWORD_RANK.indexOf(keyword);
    return rank < 0 ? KEYWORD_RANK.length : rank;
  };
  const at = (message: string, pointer = error.instancePath): RankedProblem => ({
    pointer,
    message,
    rank: rankOf(error.keyword),
  });
  const limit = params.limit as number;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return at(`unknown key "${key}"`, `${error.instancePath}/${escapePointerToken(key)}`);
    }
    case 'required':
      return at('is required', `${error.instancePath}/${escapePointerToken(String(params.missingProperty))}`);
    case 'type':
      return at(`must be ${String(params.type).split(',').join(' or ')}`);
    case 'enum':
      return at(`must be one of: ${(params.allowedValues as unknown[]).map(formatAllowed).join(', ')}`);
    case 'const':
      return at(`must be ${formatAllowed(params.allowedValue)}`);
    case 'minimum':
      return at(`must be >= ${limit}`);
    case 'maximum':
      return at(`must be <= ${limit}`);
    case 'exclusiveMinimum':
      return at(`must be > ${limit}`);
    case 'exclusiveMaximum':
      return at(`must be < ${limit}`);
    case 'format': {
      const format = String(params.format);
      return at(
        ['uri', 'url', 'uri-reference'].includes(format) ? 'must be a URL' : `must be a valid ${format}`,
      );
    }
    case 'pattern': {
      const custom: unknown = error.parentSchema?.['x-pattern-message'];
      return at(typeof custom === 'string' ? custom : `must match the pattern ${String(params.pattern)}`);
    }
    case 'minLength':
      return at(limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long`);
    case 'maxLength':
      return at(`must be at most ${limit} characters long`);
    case 'minItems':
      return at(`must have at least ${limit} ${limit === 1 ? 'item' : 'items'}`);
    case 'maxItems':
      return at(`must have at most ${limit} ${limit === 1 ? 'item' : 'items'}`);
    case 'uniqueItems':
      return at(`must not contain duplicates (items ${String(params.j)} and ${String(params.i)} are equal)`);
    default:
      return at(error.message ?? `fails "${error.keyword}"`);
  }
}

function formatAllowed(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** One problem per location (the best ranked), duplicates removed, in document order. */
function finishProblems(
  problems: readonly (ConfigProblem & { rank?: number })[],
  order: DocumentOrder,
): ConfigProblem[] {
  const best = new Map<string, ConfigProblem & { rank?: number }>();
  for (const problem of problems) {
    const current = best.get(problem.pointer);
    if (current === undefined || (problem.rank ?? 0) < (current.rank ?? 0))
      best.set(problem.pointer, problem);
  }
  return [...best.values()]
    .map(({ pointer, message }) => ({ pointer, message }))
    .sort((a, b) => order.compare(a.pointer, b.pointer));
}

interface DocumentOrder {
  compare(a: string, b: string): number;
}

/**
 * Position of every value in the document as written. A pointer that is not in the document (a missing
 * required key) sorts after everything its closest existing parent contains.
 */
function documentOrder(doc: unknown): DocumentOrder {
  const start = new Map<string, number>();
  const end = new Map<string, number>();
  const visit = (value: unknown, pointer: string): void => {
    start.set(pointer, start.size);
    if (Array.isArray(value)) value.forEach((item, index) => visit(item, `${pointer}/${index}`));
    else if (isPlainObject(value)) {
      for (const [key, item] of Object.entries(value)) visit(item, `${pointer}/${escapePointerToken(key)}`);
    }
    end.set(pointer, start.size);
  };
  visit(doc, '');
  const positionOf = (pointer: string): number => {
    const position = start.get(pointer);
    if (position !== undefined) return position;
    for (let parent = pointer; parent !== '';) {
      parent = parent.slice(0, parent.lastIndexOf('/'));
      const parentEnd = end.get(parent);
      if (parentEnd !== undefined) return parentEnd - 0.5;
    }
    return Number.MAX_SAFE_INTEGER;
  };
  return {
    compare: (a, b) => positionOf(a) - positionOf(b) || (a < b ? -1 : a > b ? 1 : 0),
  };
}

/**
 * Copies plain JSON data. Anything else (class instances, functions, NaN, cycles) is a problem rather
 * than something Ajv might accept as an "object" and then fill defaults into. Undefined object values
 * are dropped, as JSON.stringify does, so `{ port: options.port }` with no port means "default".
 */
function cloneJson(doc: unknown): { value: unknown; problems: RankedProblem[] } {
  const problems: RankedProblem[] = [];
  const ancestors = new Set<object>();
  const clone = (value: unknown, pointer: string): unknown => {
    const reject = (message: string): null => {
      problems.push({ pointer, message, rank: -1 });
      return null;
    };
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') return Number.isFinite(value) ? value : reject('must be a finite number');
    if (typeof value !== 'object') return reject(`must be a JSON value, not ${typeof value}`);
    if (ancestors.has(value)) return reject('must not refer to itself');
    if (!Array.isArray(value) && !isPlainObject(value)) {
      return reject(`must be a JSON value, not ${value.constructor?.name ?? 'an object'}`);
    }
    ancestors.add(value);
    let copy: unknown;
    if (Array.isArray(value)) {
      copy = value.map((item, index) => clone(item, `${pointer}/${index}`));
    } else {
      const object: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        if (item !== undefined)
          defineValue(object, key, clone(item, `${pointer}/${escapePointerToken(key)}`));
      }
      copy = object;
    }
    ancestors.delete(value);
    return copy;
  };
  return { value: clone(doc, ''), problems };
}

// ---------------------------------------------------------------------------------------------
// Loading

export interface LoadConfigOptions {
  /** YAML or JSON file; without one the config is all defaults (plus environment overrides). */
  file?: string | undefined;
  /** Environment for interpolation and overrides; defaults to process.env. */
  env?: NodeJS.ProcessEnv | undefined;
}

/**
 * Reads, interpolates, overrides and validates. Throws ConfigError (with `file` set) listing every
 * problem: interpolation and validation problems are reported together.
 */
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<Config> {
  const { file } = opts;
  const env = opts.env ?? process.env;
  const parsed = file === undefined ? {} : parseConfigText(await readConfigFile(file), file);
  const interpolated = interpolateDocument(parsed, env, configSchema);
  const overrides = envOverrides(env);
  const overridden = applyEnvOverrides(interpolated.value, env);
  const overrideOf = (pointer: string): EnvOverride | undefined =>
    overrides.find(({ path }) => isAtOrBelow(pointer, path));
  // A reference in a value that an environment override replaces does not matter.
  const interpolationProblems = interpolated.problems.filter(
    ({ pointer }) => overrideOf(pointer) === undefined,
  );
  const { config, problems: validationProblems } = checkDocument(overridden);
  if (config !== undefined && interpolationProblems.length === 0) return config;
  // An unresolved reference also fails validation at the same place; the interpolation problem says why.
  const ranked = [
    ...interpolationProblems.map((problem) => ({ ...problem, rank: -1 })),
    ...validationProblems.map((problem) => {
      const source = overrideOf(problem.pointer);
      const message = source === undefined ? problem.message : `${problem.message} (from ${source.variable})`;
      return { pointer: problem.pointer, message, rank: 0 };
    }),
  ];
  throw new ConfigError(finishProblems(ranked, documentOrder(overridden)), file);
}

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `file not found: ${file}`
        : code === 'EACCES' || code === 'EPERM'
          ? `permission denied reading ${file}`
          : code === 'EISDIR'
            ? `${file} is a directory, not a config file`
            : `cannot read ${file}: ${errorMessage(err)}`;
    throw new ConfigError([{ pointer: '', message }], file);
  }
}

function isAtOrBelow(pointer: string, path: readonly string[]): boolean {
  const base = path.map((segment) => `/${escapePointerToken(segment)}`).join('');
  return pointer === base || pointer.startsWith(`${base}/`);
}

// ---------------------------------------------------------------------------------------------
// Redaction and output

/** A copy of the config with every value the schema marks `x-secret: true` replaced by "***". */
export function redactConfig(config: Config): unknown {
  return redactWithSchema(config, configSchema);
}

/** The schema walk behind redactConfig, usable with any schema (tests use their own). */
export function redactWithSchema(value: unknown, schema: JsonSchema): unknown {
  const walk = (item: unknown, schemas: readonly JsonSchema[]): unknown => {
    if (schemas.some((node) => node['x-secret'] === true)) return REDACTED;
    if (Array.isArray(item))
      return item.map((element, index) => walk(element, childSchemas(schemas, index, schema)));
    if (isPlainObject(item)) {
      const copy: Record<string, unknown> = {};
      for (const [key, element] of Object.entries(item)) {
        defineValue(copy, key, walk(element, childSchemas(schemas, key, schema)));
      }
      return copy;
    }
    return item;
  };
  return walk(value, expandSchema(schema, schema));
}

/** `<pointer>: <message>` per problem; the root pointer '' is printed as '/'. */
export function formatProblems(problems: readonly ConfigProblem[]): string[] {
  return problems.map(({ pointer, message }) => `${pointer === '' ? '/' : pointer}: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Schema walking (shared by interpolation and redaction)

/** The node itself plus everything it pulls in through local $ref and allOf/anyOf/oneOf. */
function expandSchema(schema: JsonSchema, root: JsonSchema, seen = new Set<JsonSchema>()): JsonSchema[] {
  if (seen.has(schema)) return [];
  seen.add(schema);
  const nodes = [schema];
  const ref = schema.$ref;
  if (typeof ref === 'string' && ref.startsWith('#')) {
    const target = resolvePointer(root, decodeURIComponent(ref.slice(1)));
    if (isSchema(target)) nodes.push(...expandSchema(target, root, seen));
  }
  for (const keyword of ['allOf', 'anyOf', 'oneOf']) {
    const branches = schema[keyword];
    if (Array.isArray(branches)) {
      for (const branch of branches) if (isSchema(branch)) nodes.push(...expandSchema(branch, root, seen));
    }
  }
  return nodes;
}

/** Schemas that apply to `key` (object property or array index) of a value described by `schemas`. */
function childSchemas(schemas: readonly JsonSchema[], key: string | number, root: JsonSchema): JsonSchema[] {
  const children: JsonSchema[] = [];
  for (const schema of schemas) {
    if (typeof key === 'string') {
      const properties = schema.properties;
      const property = isSchema(properties) && Object.hasOwn(properties, key) ? properties[key] : undefined;
      if (isSchema(property)) children.push(property);
      else if (isSchema(schema.additionalProperties)) children.push(schema.additionalProperties);
    } else {
      const items = schema.items;
      if (Array.isArray(items)) {
        const item: unknown = items[key];
        if (isSchema(item)) children.push(item);
        else if (isSchema(schema.additionalItems)) children.push(schema.additionalItems);
      } else if (isSchema(items)) children.push(items);
    }
  }
  return children.flatMap((child) => expandSchema(child, root));
}

function resolvePointer(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  let current = root;
  for (const token of pointer.slice(1).split('/')) {
    const key = token.replaceAll('~1', '/').replaceAll('~0', '~');
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function isSchema(value: unknown): value is JsonSchema {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function loadSchemaFile(name: string): JsonSchema {
  return JSON.parse(readSchemaText(name)) as JsonSchema;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** Sets an own property even for keys like "__proto__", which plain assignment would treat specially. */
function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Copies arrays and plain objects, keeps everything else as is (validation judges it later). */
function copyJsonLike(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyJsonLike);
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) defineValue(copy, key, copyJsonLike(item));
  return copy;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

function escapePointerToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0].trim();
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

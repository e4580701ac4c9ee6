/**
 * kafkajs `ssl` and `sasl` options from the `kafka.tls` / `kafka.sasl` config.
 *
 * Secrets given as files (mounted Kubernetes Secrets) are read when a connection needs them, not
 * once: kafkajs reads `ssl` when it opens a socket and `sasl.password` when it authenticates one, so
 * the options carry getters and a rotated Secret is used by the next connection without a restart.
 * Nothing here logs or puts a secret into an error message.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { OauthbearerProviderResponse, SASLOptions } from 'kafkajs';
import { ClientCredentialsTokens } from '../../services/runtime/client-credentials.js';
import type { DeepReadonly, KafkaConfig } from '../../services/runtime/config.js';

export type KafkaTlsConfig = NonNullable<DeepReadonly<KafkaConfig>['tls']>;
export type KafkaSaslConfig = NonNullable<DeepReadonly<KafkaConfig>['sasl']>;
export type OAuthBearerConfig = NonNullable<KafkaSaslConfig['oauthbearer']>;

/** A secret or certificate file could not be read; names the config key and the path only. */
export class SecretFileError extends Error {
  override readonly name = 'SecretFileError';
  constructor(
    readonly key: string,
    readonly path: string,
    reason: string,
  ) {
    super(`cannot read ${key} ${path}: ${reason}`);
  }
}

/** Reads a secret file; one trailing newline (what `kubectl create secret --from-file` often keeps) is dropped. */
export function readSecretFile(key: string, path: string, trim = true): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretFileError(
      key,
      path,
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code),
    );
  }
  return trim ? text.replace(/\r?\n$/, '') : text;
}

/** The mechanism as Kafka names it (`SCRAM-SHA-512`), for messages. */
export function mechanismName(sasl: { readonly mechanism: string } | undefined): string {
  return sasl === undefined ? 'none' : sasl.mechanism.toUpperCase();
}

/** Every file the config names, with its key: read once at start-up so a missing one is reported early. */
export function secretFiles(
  config: Pick<DeepReadonly<KafkaConfig>, 'tls' | 'sasl'>,
): { key: string; path: string }[] {
  const files: { key: string; path: string }[] = [];
  const add = (key: string, path: string | undefined) => {
    if (path !== undefined) files.push({ key, path });
  };
  add('kafka.tls.caFile', config.tls?.caFile);
  add('kafka.tls.certFile', config.tls?.certFile);
  add('kafka.tls.keyFile', config.tls?.keyFile);
  add('kafka.sasl.passwordFile', config.sasl?.passwordFile);
  add('kafka.sasl.oauthbearer.clientSecretFile', config.sasl?.oauthbearer?.clientSecretFile);
  return files;
}

/** Defines `name` on `target` as an enumerable getter (Object.assign in kafkajs' socket factory calls it). */
function lazy<T extends object>(target: T, name: string, read: () => string): void {
  Object.defineProperty(target, name, { enumerable: true, configurable: true, get: read });
}

/** Options for `tls.connect`; inline PEM as is, files read on every new connection. */
export function tlsOptions(tls: KafkaTlsConfig): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: tls.rejectUnauthorized };
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  const pem = (name: 'ca' | 'cert' | 'key', inline: string | undefined, file: string | undefined) => {
    if (inline !== undefined) options[name] = inline;
    else if (file !== undefined)
      lazy(options, name, () => readSecretFile(`kafka.tls.${name}File`, file, false));
  };
  pem('ca', tls.ca, tls.caFile);
  pem('cert', tls.cert, tls.certFile);
  pem('key', tls.key, tls.keyFile);
  return options;
}

/** kafkajs `sasl` options. The object is handed to kafkajs as is (it caches its authenticator on it). */
export function saslOptions(sasl: KafkaSaslConfig, tokens?: OAuthBearerTokens): SASLOptions {
  if (sasl.mechanism === 'oauthbearer') {
    const source = tokens ?? new OAuthBearerTokens(sasl.oauthbearer as OAuthBearerConfig);
    return { mechanism: 'oauthbearer', oauthBearerProvider: () => source.get() };
  }
  const options = { mechanism: sasl.mechanism, username: sasl.username ?? '' } as SASLOptions & {
    password: string;
  };
  const { password, passwordFile } = sasl;
  if (password !== undefined) options.password = password;
  else if (passwordFile !== undefined)
    lazy(options, 'password', () => readSecretFile('kafka.sasl.passwordFile', passwordFile));
  return options;
}

/**
 * OAUTHBEARER tokens from an OAuth2 client-credentials grant: one fetch for all connections at once,
 * cached, renewed `refreshBeforeMs` before expiry (never later than half-way through its life).
 */
export class OAuthBearerTokens {
  private readonly tokens: ClientCredentialsTokens;

  constructor(
    private readonly config: OAuthBearerConfig,
    now: () => number = Date.now,
  ) {
    this.tokens = new ClientCredentialsTokens(
      {
        ...config,
        clientSecret: () =>
          config.clientSecret ??
          readSecretFile('kafka.sasl.oauthbearer.clientSecretFile', config.clientSecretFile ?? ''),
      },
      now,
    );
  }

  /** Token endpoint requests made so far (tests). */
  get fetches(): number {
    return this.tokens.fetches;
  }

  async get(): Promise<OauthbearerProviderResponse> {
    const extensions = this.config.extensions;
    let value: string;
    try {
      value = await this.tokens.get();
    } catch (err) {
      throw new Error(`OAUTHBEARER ${(err as Error).message}`);
    }
    return extensions === undefined
      ? { value }
      : ({ value, extensions: { ...extensions } } as OauthbearerProviderResponse);
  }
}

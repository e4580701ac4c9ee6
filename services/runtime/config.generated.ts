// generated — do not edit, run npm run gen:config-types
// Source: schemas/config.schema.json. Types of the validated config: keys with a default are required.

/**
 * The mesh-sidecar config document (YAML or JSON). Every section is optional; `{}` is a complete config. Unknown keys are errors. String values may reference environment variables with `${VAR}` or `${VAR:-default}`.
 */
export interface MeshConfig {
  admin: AdminConfig;
  ingress: IngressConfig;
  egress: EgressConfig;
  kafka: KafkaConfig;
  bridge: BridgeConfig;
  /**
   * Kafka consumer groups whose records the sidecar POSTs to the app (`ingress.target` + `path`) as CloudEvents, at least once, in order, with retries and dead letters.
   */
  subscriptions: {
    /**
     * Unique name of the subscription, used in logs and the `subscription` metric label.
     */
    name: string;
    /**
     * Topics to consume. Exactly one of `topics` and `topicPattern` is required.
     *
     * @minItems 1
     */
    topics?: string[];
    /**
     * A regular expression; every existing topic whose whole name matches is consumed (checked when the consumer joins). Exactly one of `topics` and `topicPattern` is required.
     */
    topicPattern?: string;
    /**
     * Kafka consumer group id. Sidecars with the same group share the partitions.
     */
    group: string;
    /**
     * Path on the app (`ingress.target`) the events are POSTed to.
     */
    path: string;
    /**
     * `single`: one record per request (`application/cloudevents+json`); `batch`: up to `maxBatch` records of one partition per request (`application/cloudevents-batch+json`); `lightmesh`: up to `maxBatch` records of one partition per request as the light-mesh Kafka sidecar's reactive consumer sends them (a JSON array of `{topic, key, value, headers, partition, offset, timestamp}`, answered per record; see `lightmesh`).
     */
    mode: 'single' | 'batch' | 'lightmesh';
    /**
     * Batch mode: the most records in one request.
     */
    maxBatch: number;
    /**
     * Batch mode: how long the broker may hold a fetch to fill a batch before the records it has are delivered.
     */
    maxBatchWaitMs: number;
    /**
     * `partition`: one record (or batch) in flight per partition; `key`: records with different keys of one partition in parallel, in order per key.
     */
    ordering: 'partition' | 'key';
    /**
     * The most requests this subscription has in flight to the app at once, over all its partitions.
     */
    maxConcurrency: number;
    /**
     * How long one delivery attempt may take until the app's answer is read; a timeout is retried.
     */
    timeoutMs: number;
    /**
     * Retries of 408, 429, 5xx, `RETRY` answers, timeouts and connection errors, with full-jitter exponential backoff.
     */
    retry: {
      /**
       * Attempts per record, the first included; after the last one `onPoison` decides.
       */
      maxAttempts: number;
      /**
       * Cap of the first backoff; each retry doubles it, up to `maxBackoffMs`. The wait is random between 0 and the cap (full jitter).
       */
      initialBackoffMs: number;
      /**
       * Largest backoff cap; also the longest pause before a partition whose app is down, or which is blocked on a poison record, is tried again.
       */
      maxBackoffMs: number;
    };
    /**
     * Topic that poison records (and records whose retries ran out) are written to, with the original key, value and headers plus `mesh.*` headers.
     */
    deadLetterTopic?: string;
    /**
     * What happens to a record that is poison or ran out of attempts: `deadLetter` (write it to `deadLetterTopic`), `drop` (skip it), `block` (stop the partition at it and try it again after `retry.maxBackoffMs`). Absent: `deadLetter` when a dead-letter topic is set, else `block`.
     */
    onPoison?: 'deadLetter' | 'drop' | 'block';
    /**
     * Where a group without a committed offset starts: `latest` (new records only) or `earliest` (the whole topic).
     */
    autoOffsetReset: 'latest' | 'earliest';
    /**
     * Final offsets are committed at least this often; always on rebalance and shutdown.
     */
    commitIntervalMs: number;
    /**
     * Final offsets are also committed once this many records became final since the last commit. It bounds the finished records a killed member's partitions deliver again; each commit costs a round trip and broker work (at 500, a subscription delivering 100,000 records/s commits 200 times a second).
     */
    commitRecords: number;
    /**
     * Settings of `mode: lightmesh` (the light-mesh Kafka sidecar's reactive consumer contract); ignored by the other modes.
     */
    lightmesh: {
      /**
       * How record keys are shown to the backend: `json` (parsed JSON; text that is not JSON as a string), `string` (UTF-8 text) or `binary` (base64).
       */
      keyFormat: 'json' | 'string' | 'binary';
      /**
       * How record values are shown to the backend: `json`, `string` or `binary`, as `keyFormat`.
       */
      valueFormat: 'json' | 'string' | 'binary';
      /**
       * When at least this percentage of a batch is answered `processed: false`, the whole batch is retried instead of dead-lettering the failed records.
       */
      batchRollbackThreshold: number;
      /**
       * Write records answered `processed: false` (and batches whose attempts ran out) to `<topic>` + `deadLetterTopicExt`. Off: records answered `processed: false` are logged and committed (as light-mesh did), and a batch whose attempts ran out blocks its partition and is tried again after `retry.maxBackoffMs`.
       */
      deadLetterEnabled: boolean;
      /**
       * Appended to the source topic to name its dead-letter topic.
       */
      deadLetterTopicExt: string;
      /**
       * Path on the app that must answer 2xx before the first batch is delivered (checked again after the app was down); empty to skip the check.
       */
      healthPath: string;
      /**
       * The `serviceId` written into audit records.
       */
      serviceId: string;
      /**
       * One audit record per consumed record (`auditType` `REACTIVE_CONSUMER`).
       */
      audit: {
        /**
         * Write audit records.
         */
        enabled: boolean;
        /**
         * `topic`: to `topic`, keyed by correlation id; `log`: as `info` log lines.
         */
        target: 'topic' | 'log';
        /**
         * The audit topic when `target` is `topic`.
         */
        topic: string;
      };
    };
  }[];
  /**
   * Consume-transform-produce over HTTP: the sidecar consumes `topics`, POSTs each record (or batch) to the app (`ingress.target` + `path`) as CloudEvents, and produces the records the app answers with (`{"records":[...]}`), committing the input offsets with them, exactly once (Kafka transactions) or at least once.
   */
  processors: {
    /**
     * Unique name of the processor, used in logs, the `processor` metric label and the transactional ids.
     */
    name: string;
    /**
     * Topics to consume.
     *
     * @minItems 1
     */
    topics: string[];
    /**
     * Kafka consumer group id; sidecars with the same group share the input partitions. Must differ from every other processor's and subscription's group.
     */
    group: string;
    /**
     * Path on the app (`ingress.target`) the input events are POSTed to.
     */
    path: string;
    /**
     * Topics the app may answer records for; an answer naming any other topic is treated as poison.
     *
     * @minItems 1
     */
    outputTopics: string[];
    /**
     * `exactly_once`: the output records and the input offset are committed in one Kafka transaction (a transactional producer per input partition); readers of the outputs must use read_committed. `at_least_once`: an idempotent producer, the input offset is committed after the outputs are acknowledged (outputs may repeat after a crash, never go missing).
     */
    guarantee: 'exactly_once' | 'at_least_once';
    /**
     * `exactly_once`: prefix of the transactional ids, `<prefix>-<name>-<topic>-<partition>`; absent: the `group`. Must be the same on every sidecar of the group and unique per application.
     */
    transactionalIdPrefix?: string;
    /**
     * `single`: one input record per request (`application/cloudevents+json`); `batch`: up to `maxBatch` records of one partition per request (`application/cloudevents-batch+json`), the answer's records standing for the whole batch.
     */
    mode: 'single' | 'batch';
    /**
     * Batch mode: the most input records in one request.
     */
    maxBatch: number;
    /**
     * `partition`: one request in flight per input partition; `key`: records with different keys of one partition in parallel, in order per key. Outputs are always produced in input offset order.
     */
    ordering: 'partition' | 'key';
    /**
     * The most requests this processor has in flight to the app at once, over all its partitions.
     */
    maxConcurrency: number;
    /**
     * How long one request to the app may take until its answer is read; a timeout is retried.
     */
    timeoutMs: number;
    /**
     * Retries of 408, 429, 5xx, `RETRY` answers, timeouts and connection errors, with full-jitter exponential backoff.
     */
    retry: {
      /**
       * Attempts per record (or batch), the first included; after the last one `onPoison` decides.
       */
      maxAttempts: number;
      /**
       * Cap of the first backoff; each retry doubles it, up to `maxBackoffMs`. The wait is random between 0 and the cap (full jitter).
       */
      initialBackoffMs: number;
      /**
       * Largest backoff cap; also the longest pause of a partition whose app is down, which is blocked on a poison record, or whose commit failed.
       */
      maxBackoffMs: number;
    };
    /**
     * Topic that poison input records (4xx answers, invalid answers, answers naming a topic outside `outputTopics`, records whose retries ran out) are written to, with `mesh.*` headers; in `exactly_once` inside the same transaction as the outputs.
     */
    deadLetterTopic?: string;
    /**
     * What happens to a poison input record: `deadLetter` (write it to `deadLetterTopic`), `drop` (skip it, producing nothing), `block` (stop the partition at it and try it again after `retry.maxBackoffMs`). Absent: `deadLetter` when a dead-letter topic is set, else `block`.
     */
    onPoison?: 'deadLetter' | 'drop' | 'block';
    /**
     * Where a group without a committed offset starts: `latest` (new records only) or `earliest` (the whole topic).
     */
    autoOffsetReset: 'latest' | 'earliest';
    /**
     * The most input records of one partition whose outputs and offset are committed together (one transaction in `exactly_once`).
     */
    commitRecords: number;
    /**
     * Consumer group session timeout: how long the partitions of a member that died stay unassigned. The broker bounds it (`group.min.session.timeout.ms`, 6000 by default).
     */
    sessionTimeoutMs: number;
  }[];
  shutdown: ShutdownConfig;
  log: LogConfig;
  telemetry: TelemetryConfig;
}
/**
 * The admin HTTP listener: health and readiness probes, Prometheus metrics, the effective (redacted) config and the quit endpoint.
 */
export interface AdminConfig {
  /**
   * Whether the admin listener runs. Without it there are no probes and no metrics endpoint.
   */
  enabled: boolean;
  /**
   * Address the admin listener binds to. `0.0.0.0` lets the kubelet reach the probes on the pod IP.
   */
  host: string;
  /**
   * TCP port of the admin listener. `0` binds any free port (used by tests).
   */
  port: number;
  /**
   * Serve the admin listener over HTTPS. Absent means plain HTTP.
   */
  tls?: TlsConfig;
}
/**
 * The inbound HTTP proxy: receives the pod's traffic and forwards it to the application.
 */
export interface IngressConfig {
  /**
   * Whether the ingress proxy runs.
   */
  enabled: boolean;
  /**
   * Address the ingress listener binds to.
   */
  host: string;
  /**
   * TCP port of the ingress listener. `0` binds any free port (used by tests).
   */
  port: number;
  /**
   * Whether the ingress listener also speaks HTTP/2 on the same port: with `tls`, to clients that offer `h2` by ALPN; in plain HTTP, with prior knowledge (h2c, what gRPC clients send), told apart from HTTP/1.1 by the HTTP/2 connection preface. gRPC callers need it.
   */
  http2: boolean;
  /**
   * Base URL of the application that ingress forwards to (http or https). Overridden by the `APP_URL` environment variable.
   */
  target: string;
  /**
   * How long ingress waits for the application's response headers, and for each next chunk of its body, before answering 504 (DEADLINE_EXCEEDED for a gRPC call). A gRPC call with a `grpc-timeout` gets that deadline instead.
   */
  timeoutMs: number;
  /**
   * How ingress speaks to the application: `http1`, or `http2` for an application that serves HTTP/2 — gRPC servers (h2c with prior knowledge for an `http://` target, h2 by ALPN for `https://`). Any caller, HTTP/1.1 or HTTP/2, is forwarded either way; response trailers (gRPC status) reach HTTP/2 callers. With `http2`, gRPC-Web calls (`application/grpc-web[-text]…`) are translated to gRPC for the app, the trailers returned in gRPC-Web's trailer frame.
   */
  targetProtocol: 'http1' | 'http2';
  /**
   * Serve the ingress listener over HTTPS (and mTLS when `clientCa` is set). Absent means plain HTTP.
   */
  tls?: TlsConfig;
  /**
   * Path to the app's OpenAPI 3.0 or 3.1 document (YAML or JSON), relative to the config file. Requests matching an operation are validated against it (path, query, header and cookie parameters, JSON bodies); the operation's path template becomes the `route` metric label. Reloaded on SIGHUP.
   */
  openapi?: string;
  /**
   * Answer 404 for a path that no operation of `openapi` matches and 405 (with `Allow`) for a method the path does not have. When false, such requests are forwarded unvalidated.
   */
  openapiStrict: boolean;
  /**
   * Check the app's JSON responses against the operation's documented responses. Mismatches are logged and counted in `mesh_ingress_response_validation_failures_total`; the response is relayed unchanged.
   */
  validateResponses: boolean;
  /**
   * Largest request body ingress accepts; larger bodies get 413.
   */
  maxBodyBytes: number;
  /**
   * Load shedding: requests the ingress works on at once (from arrival to the end of the app's answer, gRPC streams and upgraded connections included); one arriving beyond it gets 503 `MESH_OVERLOADED` with `Retry-After: 1` and `x-mesh-error: overloaded` at once, before any other step, so an app that is falling behind is not buried under a queue it cannot serve (Envoy's overflow, Linkerd's inbound max in-flight). Absent: no limit. Reloadable.
   */
  maxConcurrentRequests?: number;
  /**
   * Verify bearer tokens (JWS) before requests reach the app. Set exactly one of `jwksUrl` and `keysFile`. Absent means no authentication.
   */
  jwt?: {
    /**
     * URL of the issuer's JSON Web Key Set. Keys are cached, refetched when a token names an unknown `kid` (at most once per `jwksCooldownMs`) and after `jwksCacheMaxAgeMs`.
     */
    jwksUrl?: string;
    /**
     * Path to a JSON Web Key Set file (`{"keys": [...]}`), relative to the config file, used instead of `jwksUrl`. Re-read on SIGHUP.
     */
    keysFile?: string;
    /**
     * Required `iss` claim. Absent means any issuer.
     */
    issuer?: string;
    /**
     * Required `aud` value (one of the token's audiences). Absent means any audience.
     */
    audience?: string;
    /**
     * Accepted JWS algorithms. Absent means every asymmetric algorithm jose supports for the key.
     */
    algorithms?: string[];
    /**
     * Tolerance applied to `exp`, `nbf` and `iat`.
     */
    clockSkewSec: number;
    /**
     * Least time between two JWKS fetches triggered by unknown `kid`s, so forged tokens cannot hammer the issuer.
     */
    jwksCooldownMs: number;
    /**
     * How long a fetched JWKS is used before it is fetched again.
     */
    jwksCacheMaxAgeMs: number;
    /**
     * Claims passed to the app as request headers, `claim: header-name` (e.g. `sub: x-user-id`). Headers of these names sent by the caller are always removed. Non-string claims are sent as JSON.
     */
    forwardClaims: {
      /**
       * The request header that carries the claim.
       */
      [k: string]: string | undefined;
    };
    /**
     * Request paths that need no token (health checks). An entry ending in `*` is a prefix.
     */
    skipPaths: string[];
    /**
     * Scopes required per operation, keyed `METHOD /path/template` or `/path/template` (every method); they replace what the OpenAPI `security` requirements say for that operation.
     */
    scopes: {
      /**
       * Scopes the token must all carry.
       */
      [k: string]: string[] | undefined;
    };
  };
  /**
   * Token buckets checked in order; a request must pass every rule that matches it. Each rule keeps one bucket per route (OpenAPI path template) and client key.
   */
  rateLimits: {
    /**
     * Name shown in logs and the `RateLimit-Policy` header.
     */
    name?: string;
    /**
     * Only requests with this method. Absent means every method.
     */
    method?: string;
    /**
     * Only the operation with this OpenAPI path template (or, without an OpenAPI document, this exact path). Absent means every route.
     */
    path?: string;
    /**
     * What tells clients apart: `address` (the client IP), `subject` (the verified JWT `sub`), or `header:<name>`. Requests without the key share one bucket.
     */
    key: string;
    /**
     * Refill rate of the bucket.
     */
    requestsPerSecond: number;
    /**
     * Bucket size: requests allowed at once. Absent means `requestsPerSecond` rounded up.
     */
    burst?: number;
  }[];
  /**
   * Request/response audit log on its own stream, apart from the operational log: one JSON line per ingress request with method, path, route, status, duration, client address, subject (`sub` of a verified token), correlation id (`x-correlation-id`, else the request id) and request id. Absent: no audit log and no cost per request.
   */
  auditLog?: {
    /**
     * `stdout`, `stderr`, or the path of a file that lines are appended to.
     */
    destination: string;
    /**
     * Also log the request body (when the pipeline holds it in memory, i.e. it was validated) and the response body, each cut at `maxBodyBytes`. Off by default: bodies may hold personal data.
     */
    captureBody: boolean;
    /**
     * How much of each body is logged when `captureBody` is on.
     */
    maxBodyBytes: number;
  };
  /**
   * Per path-prefix policies (light-proxy parity): header rules, IP allow/deny lists, the authentication used (JWT, API key, basic auth or none), CORS, fault injection and traffic mirroring. A request gets the policies of the longest matching prefix. With no routes nothing of this runs per request.
   */
  routes: {
    /**
     * Path prefix, starting with `/`, matched at segment boundaries (`/api` matches `/api` and `/api/x`, not `/apix`).
     */
    prefix: string;
    /**
     * Headers set, added or removed on the request to the app and on its response.
     */
    headers?: HeaderRulesConfig;
    /**
     * When set, only clients whose address is in one of these blocks are let in (others get 403). The address is the TCP peer's.
     */
    allow?: string[];
    /**
     * Clients whose address is in one of these blocks get 403 (checked before `allow`).
     */
    deny?: string[];
    /**
     * How callers of this prefix authenticate: `jwt` (the `ingress.jwt` verifier; the default when `ingress.jwt` is set), `apiKey`, `basic`, or `none`. Absent: `jwt` when `ingress.jwt` is set, else none.
     */
    auth?: 'jwt' | 'apiKey' | 'basic' | 'none';
    /**
     * Keys accepted when `auth` is `apiKey`, and where the caller puts them. Keys are compared in constant time (SHA-256 digests with `crypto.timingSafeEqual`).
     */
    apiKey?: {
      /**
       * Request header carrying the key.
       */
      header: string;
      /**
       * Query parameter carrying the key, looked at when the header is absent. Absent: keys in the query are not accepted.
       */
      query?: string;
      /**
       * Accepted keys inline (use `${VAR}`). Redacted in `/config` and logs.
       */
      keys?: string[];
      /**
       * File with one accepted key per line (a mounted Secret); blank lines and `#` comments are skipped. Read at start-up and on reload.
       */
      keysFile?: string;
    };
    /**
     * Users accepted when `auth` is `basic`: a file of `user:password` lines, where the password may be `sha256:<hex>` (digest of the password) or plain. Compared in constant time.
     */
    basicAuth?: {
      /**
       * Path of the `user:password` file (htpasswd-like; `sha256:<hex>` or plain passwords).
       */
      usersFile: string;
      /**
       * Realm named in the `WWW-Authenticate` challenge.
       */
      realm: string;
    };
    /**
     * Cross-origin resource sharing: preflight `OPTIONS` requests from an allowed origin are answered by the sidecar (204) without reaching the app or the authentication; other requests from an allowed origin get `Access-Control-Allow-Origin` on the response.
     */
    cors?: {
      /**
       * Origins allowed (`https://app.example.com`), or `*` for any.
       *
       * @minItems 1
       */
      allowOrigins: string[];
      /**
       * Methods a preflight allows.
       */
      allowMethods: string[];
      /**
       * Request headers a preflight allows. Absent: those the preflight asks for.
       */
      allowHeaders?: string[];
      /**
       * Response headers the browser may show to the page.
       */
      exposeHeaders: string[];
      /**
       * Send `Access-Control-Allow-Credentials: true` (the origin is then echoed even with `*`).
       */
      allowCredentials: boolean;
      /**
       * How long a browser may cache the preflight answer.
       */
      maxAgeSeconds: number;
    };
    /**
     * For resilience testing in non-production only: delays and aborts a share of the requests, like Envoy's fault filter and the light-mesh chaos handler. Never configure it in production.
     */
    fault?: {
      /**
       * Percentage (0–100) of requests delayed by `delayMs` before they are forwarded.
       */
      delayPercent: number;
      /**
       * The injected delay.
       */
      delayMs: number;
      /**
       * Percentage (0–100) of requests answered at once with `abortStatus` instead of being forwarded.
       */
      abortPercent: number;
      /**
       * HTTP status of an aborted request.
       */
      abortStatus: number;
    };
    /**
     * Copies a share of the requests to a shadow upstream after the real response has finished; its answers are discarded and it never delays or fails the real request. The body is teed as it arrives; bodies larger than `maxBodyBytes`, and requests the sidecar refuses itself, are not mirrored.
     */
    mirror?: {
      /**
       * Base URL of the shadow upstream (`http://orders-v2:8080`).
       */
      target: string;
      /**
       * Percentage (0–100) of the requests copied.
       */
      percent: number;
      /**
       * Requests with a larger body (by `content-length`, or as it streams) are not mirrored.
       */
      maxBodyBytes: number;
      /**
       * A mirrored request still open after this is cancelled.
       */
      timeoutMs: number;
    };
  }[];
}
/**
 * The outbound HTTP router: the app calls `http://127.0.0.1:15001/...`; the service comes from the `Host` header (or a path-prefix route), and the sidecar picks an endpoint, applies timeouts, retries and load balancing. The listener runs only when at least one service is configured or `UPSTREAM_URL` is set.
 */
export interface EgressConfig {
  /**
   * Whether the egress router runs (when it has a service to route to).
   */
  enabled: boolean;
  /**
   * Address the egress listener binds to. Keep it on loopback: only the app in the pod should call it.
   */
  host: string;
  /**
   * TCP port of the egress listener. `0` binds any free port (used by tests).
   */
  port: number;
  /**
   * Whether the egress listener also speaks HTTP/2 on the same port: with `tls`, to clients that offer `h2` by ALPN; in plain HTTP, with prior knowledge (h2c, what gRPC clients send), told apart from HTTP/1.1 by the HTTP/2 connection preface. The service comes from `:authority` as it would from `Host`.
   */
  http2: boolean;
  /**
   * Serve the egress listener over HTTPS. Absent means plain HTTP.
   */
  tls?: TlsConfig;
  /**
   * Request bodies up to this size are kept in memory so the request can be sent again on a retry; larger bodies are streamed to the upstream and never retried.
   */
  maxRetryBodyBytes: number;
  /**
   * Upstream services by name. A request goes to the service whose name matches its `Host` header: `orders`, or with a namespace `orders.shop`, `orders.shop.svc`, `orders.shop.svc.cluster.local` (any port).
   */
  services: {
    /**
     * One upstream service: its endpoints and the policies applied to calls to it.
     */
    [k: string]:
      | {
          /**
           * Kubernetes namespace of the service. When set, only that namespace matches the long `Host` forms; when absent, any namespace does.
           */
          namespace?: string;
          /**
           * Base URLs of the service's instances (`http://10.0.0.7:8080`, `https://orders-0.orders:8443`). A service without endpoints answers 503 `no-healthy-upstream`.
           */
          endpoints: string[];
          /**
           * How the sidecar speaks to this service's endpoints: `http1` (pooled keep-alive connections), or `http2` for services that serve HTTP/2 — gRPC servers (h2c with prior knowledge to `http://` endpoints, h2 by ALPN to `https://`; one multiplexed connection per endpoint). Response trailers (gRPC status) reach HTTP/2 callers.
           */
          protocol: 'http1' | 'http2';
          /**
           * With `protocol: http2`: the sidecar PINGs an endpoint's HTTP/2 connection at most every `intervalMs` while calls are open on it, as the first call after a pause that long opens, and when a call on it is given up unanswered (timed out; at most once a minute), and ends a connection that does not answer within `timeoutMs` (its calls fail as resets; the next call opens a new connection), so a connection that died silently (host gone, a NAT or firewall that dropped the flow) does not hold the service's calls until TCP notices. Idle connections are not pinged, and the 5-minute default is what gRPC servers (grpc-go, grpc-java) accept by default: more frequent PINGs get GOAWAY `too_many_pings` from them, which closes the connection with its streams — lower it only for servers that permit it. HTTP/1.1 endpoints are not pinged.
           */
          keepalive: {
            /**
             * Least time between two PINGs on a connection; `0` turns keepalive off.
             */
            intervalMs: number;
            /**
             * How long a PING may go unanswered before the connection is ended.
             */
            timeoutMs: number;
          };
          /**
           * How the sidecar connects to `https` endpoints: which CA to trust, the client certificate for mTLS, the SNI name. Without it, https endpoints are verified against Node's default CAs.
           */
          tls?: {
            /**
             * Path to a PEM CA bundle that upstream certificates must chain to (instead of the default CAs).
             */
            ca?: string;
            /**
             * Path to the PEM client certificate presented to upstreams that require one (mTLS); needs `key`.
             */
            cert?: string;
            /**
             * Path to the PEM private key of `cert`.
             */
            key?: string;
            /**
             * Name sent as SNI and checked against the upstream certificate (for endpoints given as IP addresses, or DNS names that differ from the certificate's).
             */
            serverName?: string;
          };
          /**
           * Calls to the service carry `Authorization: Bearer <token>` from an OAuth2 client-credentials grant. The token is fetched once for all concurrent calls, cached, refreshed `refreshBeforeMs` before it expires, and fetched again once when the upstream answers 401.
           */
          oauth2?: {
            /**
             * URL of the authorization server's token endpoint.
             */
            tokenUrl: string;
            /**
             * OAuth2 client id.
             */
            clientId: string;
            /**
             * OAuth2 client secret (use `${VAR}` to take it from the environment).
             */
            clientSecret: string;
            /**
             * Space-separated scopes to ask for.
             */
            scope?: string;
            /**
             * `audience` parameter, for servers that want one.
             */
            audience?: string;
            /**
             * `client_secret_basic` (HTTP Basic) or `client_secret_post` (credentials in the form body).
             */
            authMethod: 'client_secret_basic' | 'client_secret_post';
            /**
             * A token is renewed when it has less than this left to live.
             */
            refreshBeforeMs: number;
            /**
             * As light-router does it: when the app already sent `Authorization`, the client-credentials token goes in this header (`X-Scope-Token`) and the app's `Authorization` is kept. Absent: the token always replaces `Authorization`.
             */
            scopeTokenHeader?: string;
          };
          /**
           * Headers set, added or removed on calls to this service and on its answers; `host` rewrites the `Host` sent.
           */
          headers?: HeaderRulesConfig;
          /**
           * Endpoints from a DNS name (A/AAAA records, as a Kubernetes headless Service gives them), re-resolved periodically; endpoints are added and removed without cutting requests in flight. Used instead of `endpoints` when set. A failed lookup keeps the last known endpoints.
           */
          dns?: EgressDnsConfig;
          /**
           * Endpoint groups by name (`stable`, `canary`) that share the service's calls by weight: each call goes to a group drawn at random in proportion to the weights (with `consistent_hash`, drawn from the `hashHeader` value, so a key stays in its group), then to an endpoint of that group by `loadBalancer`. Each group has its own endpoints (static or DNS), balancer and outlier detection. A group with weight 0 gets no calls (drain); a group without an eligible endpoint is skipped and its share goes to the others. A retry prefers an endpoint not tried yet, in the group of the previous attempt first, then in the other groups. When set, the service's own `endpoints` and `dns` must not be set.
           */
          split?: {
            /**
             * One group of the split: its weight and its endpoints.
             */
            [k: string]:
              | {
                  /**
                   * Relative share of calls: the group's weight divided by the sum of the weights (`90` and `10` give 90% and 10%). `0` sends the group nothing.
                   */
                  weight: number;
                  /**
                   * Base URLs of the group's instances.
                   */
                  endpoints: string[];
                  /**
                   * The group's endpoints from a DNS name, as the service's `dns`. Used instead of `endpoints` when set.
                   */
                  dns?: EgressDnsConfig;
                  /**
                   * Calls carrying all of these request headers with exactly these values go to this group whatever the weights, retries included (Istio's `match.headers` to a subset, a Gateway API HTTPRoute header match): testers reach a canary with a header, and a group with weight 0 is reachable only so (a dark launch). With no eligible endpoint in the group such a call gets 503 `no-healthy-upstream`, not another group. The first matching group in config order wins; calls matching none share the groups by weight.
                   */
                  headers?: {
                    [k: string]: string | undefined;
                  };
                }
              | undefined;
          };
          /**
           * How an endpoint is picked: `round_robin`, `least_request` (the less busy of two random endpoints), `peak_ewma` (Linkerd's default: of two random endpoints, the one with the lower peak-EWMA latency to response headers times its active requests + 1, so slow endpoints get less traffic before they fail) or `consistent_hash` (on `hashHeader`; requests without the header are spread round robin).
           */
          loadBalancer: 'round_robin' | 'least_request' | 'peak_ewma' | 'consistent_hash';
          /**
           * Request header whose value `consistent_hash` maps to an endpoint.
           */
          hashHeader?: string;
          /**
           * Overall time for a call, retries and backoff included, until the end of the response; then 504 with `x-mesh-error: timeout` (DEADLINE_EXCEEDED for a gRPC call). A gRPC call with a `grpc-timeout` gets that deadline instead.
           */
          timeoutMs: number;
          /**
           * How long opening a connection to an endpoint may take; longer counts as a connect failure.
           */
          connectTimeoutMs: number;
          /**
           * When a failed attempt is tried again. A request that reached the upstream is retried only when it is safe: GET, HEAD, OPTIONS, PUT, DELETE or an `Idempotency-Key` header; a connect failure is retried for any method.
           */
          retry: {
            /**
             * Most attempts per call, the first one included (`1` = no retries).
             */
            attempts: number;
            /**
             * How long one attempt may wait for the response headers. Absent means only the request timeout applies.
             */
            perTryTimeoutMs?: number;
            /**
             * Conditions that are retried: `connect-failure` (also an HTTP/2 stream the upstream refused or never processed), `reset` (connection closed or reset before the response headers), `timeout` (the per-try timeout fired), `5xx` (any 5xx status), `gateway-error` (502, 503, 504). A gRPC answer's status counts as its HTTP mapping (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, INTERNAL 500, ...) when it comes with the headers (a Trailers-Only answer); the gRPC conditions, Envoy's names, pick gRPC statuses themselves: `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`.
             */
            retryOn: (
              | 'connect-failure'
              | 'reset'
              | 'timeout'
              | '5xx'
              | 'gateway-error'
              | 'cancelled'
              | 'deadline-exceeded'
              | 'internal'
              | 'resource-exhausted'
              | 'unavailable'
            )[];
            /**
             * Further response statuses that are retried (for example `409` or `429`).
             */
            statuses: number[];
            /**
             * Backoff before the first retry; it doubles for each further retry (up to `maxBackoffMs`) and the actual wait is a random time between 0 and that value (full jitter).
             */
            baseBackoffMs: number;
            /**
             * Cap of the backoff before jitter. Also the longest `Retry-After` of an upstream answer the sidecar waits for before retrying it (the wait is then at least the `Retry-After`); an answer asking for longer is not retried but passed back to the caller.
             */
            maxBackoffMs: number;
            /**
             * Retry budget: retries over the last 10 s may be at most this share of the requests in the same 10 s (plus `minRetriesPerSecond`), so retries cannot multiply the load of an upstream that is down.
             */
            budgetRatio: number;
            /**
             * Retries always allowed by the budget, whatever the traffic (so a quiet service can still retry).
             */
            minRetriesPerSecond: number;
          };
          /**
           * Per service. Over a limit, or while the circuit is open, calls are answered 503 with `x-mesh-error: circuit-open` without contacting the upstream.
           */
          circuitBreaker: {
            /**
             * Connections the sidecar opens to one endpoint at most; further requests wait for one.
             */
            maxConnections: number;
            /**
             * Requests waiting for a connection (all endpoints together) at most; beyond, calls are refused.
             */
            maxPendingRequests: number;
            /**
             * Calls to the service in flight at most; beyond, calls are refused.
             */
            maxRequests: number;
            /**
             * Consecutive failed calls (5xx, connect failure, reset or timeout, after retries) that open the circuit. `0` never opens it.
             */
            consecutiveFailures: number;
            /**
             * How long the circuit stays open; then one probe call goes through (half-open): success closes the circuit, failure opens it again.
             */
            openMs: number;
          };
          /**
           * Per endpoint: an endpoint that fails repeatedly is taken out of load balancing for a while.
           */
          outlierDetection: {
            /**
             * Consecutive 5xx answers or connect failures of one endpoint that eject it. `0` turns this rule off (and outlier detection with it, unless `failurePercent` is set).
             */
            consecutiveFailures: number;
            /**
             * Envoy's failure-percentage rule: an endpoint whose 5xx answers and connect failures reach this share of its calls within `failurePercentIntervalMs` (once it has had `failurePercentMinRequests` there) is ejected — one that fails 6 calls in 10, never 5 in a row, escapes `consecutiveFailures`. `0` (the default) turns the rule off.
             */
            failurePercent: number;
            /**
             * Calls an endpoint must have had in the current interval before `failurePercent` judges it (Envoy's `failure_percentage_request_volume`).
             */
            failurePercentMinRequests: number;
            /**
             * Length of the windows the failure percentage is counted in; each starts afresh.
             */
            failurePercentIntervalMs: number;
            /**
             * An endpoint stays out this long times the number of times it has been ejected (so repeat offenders stay out longer).
             */
            baseEjectionMs: number;
            /**
             * Cap of the ejection time.
             */
            maxEjectionMs: number;
            /**
             * At most this share of the endpoints is ejected at once (rounded down: with 50% and 1 endpoint, none is). When every endpoint is ejected (100%), calls get 503 `no-healthy-upstream`.
             */
            maxEjectedPercent: number;
          };
          /**
           * Absent: none. Every `intervalMs` each endpoint gets `GET <path>` (a 2xx or 3xx answer passes), or with `grpcService` the gRPC health check `grpc.health.v1.Health/Check` (SERVING passes). `unhealthyThreshold` failed checks in a row take an endpoint out of load balancing, `healthyThreshold` passed ones in a row bring it back. Endpoints start healthy; when none is healthy, all are used (panic mode, as Envoy).
           */
          healthCheck?: {
            /**
             * Path (and query) of an HTTP check, e.g. `/healthz`. Give this or `grpcService`.
             */
            path?: string;
            /**
             * The service name a gRPC health check asks about (`""`: the server as a whole), for services with `protocol: http2`. Give this or `path`.
             */
            grpcService?: string;
            /**
             * Check this port of each endpoint's host instead of the endpoint's own (an app that serves its health on a management port, as Spring Boot's actuator or a Kubernetes probe's `port`), with the endpoint's scheme, protocol and TLS settings. Absent: the endpoint's port, over the connections the calls use.
             */
            port?: number;
            /**
             * Request headers of each check (Envoy's `request_headers_to_add`, a Kubernetes probe's `httpHeaders`), e.g. a token the health endpoint wants; `host` replaces the endpoint's host:port as `Host` (`:authority`).
             */
            headers: {
              [k: string]: string | undefined;
            };
            /**
             * Time between two rounds of checks (plus up to a tenth of it of jitter).
             */
            intervalMs: number;
            /**
             * A check not answered completely within this time failed.
             */
            timeoutMs: number;
            /**
             * Failed checks in a row that take a healthy endpoint out.
             */
            unhealthyThreshold: number;
            /**
             * Passed checks in a row that bring an unhealthy endpoint back.
             */
            healthyThreshold: number;
          };
        }
      | undefined;
  };
  /**
   * Path-prefix routes for requests whose `Host` names no service (the app calling `http://127.0.0.1:15001/orders/...`). The longest matching prefix wins.
   */
  routes: {
    /**
     * Path prefix, starting with `/`. It matches at segment boundaries: `/orders` matches `/orders` and `/orders/1`, not `/ordersx`.
     */
    prefix: string;
    /**
     * Name of a service in `egress.services`.
     */
    service: string;
    /**
     * Remove the prefix from the path before forwarding (`/orders/1` → `/1`).
     */
    stripPrefix: boolean;
  }[];
  /**
   * light-router style addressing, beside `Host` routing: a `service_id` header names the target service, a `service_url` header gives the URL of one of its endpoints, and the `pathPrefixes` and `pathMethods` dictionaries map paths to services. Order: the headers, then `Host`, then `pathMethods`, `pathPrefixes`, `routes`. Absent: none of this runs.
   */
  serviceIds?: {
    /**
     * Header naming the target service (a name in `egress.services`). Default `service_id`.
     */
    header?: string;
    /**
     * Header giving the URL of the target; it goes to the service with an endpoint of that origin. Default `service_url`.
     */
    urlHeader?: string;
    /**
     * Path prefix → service name; the longest matching prefix wins.
     */
    pathPrefixes?: {
      [k: string]: string | undefined;
    };
    /**
     * `path@method` → service name, the path an OpenAPI template (`/v1/pets/{petId}@get`).
     */
    pathMethods?: {
      [k: string]: string | undefined;
    };
  };
}
/**
 * How the sidecar connects to Kafka.
 */
export interface KafkaConfig {
  /**
   * Kafka bootstrap servers as `host:port`. Overridden by the `KAFKA_BOOTSTRAP` environment variable (comma-separated list).
   *
   * @minItems 1
   */
  bootstrap: string[];
  /**
   * Kafka client id, visible in broker logs and quotas.
   */
  clientId: string;
  /**
   * Connect to the brokers over TLS (`SSL`, or `SASL_SSL` together with `sasl`). Present = on. PEM values may be given inline or as file paths (mounted Kubernetes Secrets); files are read at start-up and again for every new broker connection, so a rotated Secret is picked up without a restart.
   */
  tls?: {
    /**
     * PEM text of the CA certificate(s) that sign the broker certificates. Without `ca` or `caFile` the system's trusted CAs are used (right for most managed services).
     */
    ca?: string;
    /**
     * Path of a PEM file with the CA certificate(s); instead of `ca`.
     */
    caFile?: string;
    /**
     * PEM text of the client certificate (chain) for mutual TLS; needs `key` or `keyFile`.
     */
    cert?: string;
    /**
     * Path of the client certificate (chain) for mutual TLS; instead of `cert`.
     */
    certFile?: string;
    /**
     * PEM text of the client certificate's private key (use `${VAR}`; prefer `keyFile`). Redacted in `/config` and logs.
     */
    key?: string;
    /**
     * Path of the client certificate's private key (PEM); instead of `key`.
     */
    keyFile?: string;
    /**
     * Name sent as SNI and checked against every broker certificate, instead of the host name the sidecar connects to (for brokers addressed by IP, or certificates issued for another name).
     */
    serverName?: string;
    /**
     * Refuse brokers whose certificate does not chain to a trusted CA or does not match the host name. Turn off only for local experiments.
     */
    rejectUnauthorized: boolean;
  };
  /**
   * Authenticate to the brokers with SASL (`SASL_SSL` together with `tls`, else `SASL_PLAINTEXT`). `plain` and the `scram-*` mechanisms need `username` and one of `password` / `passwordFile`; `oauthbearer` needs `oauthbearer`.
   */
  sasl?: {
    /**
     * `plain`, `scram-sha-256`, `scram-sha-512` or `oauthbearer`.
     */
    mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'oauthbearer';
    /**
     * SASL user name (`plain`, `scram-*`).
     */
    username?: string;
    /**
     * SASL password (`plain`, `scram-*`); use `${VAR}`, or better `passwordFile`. Redacted in `/config` and logs.
     */
    password?: string;
    /**
     * Path of a file holding the SASL password (a mounted Secret; a trailing newline is ignored). Read at start-up and again for every new broker connection.
     */
    passwordFile?: string;
    /**
     * Where `oauthbearer` gets its token: an OAuth2 client-credentials grant. The token is fetched once for all connections, cached, and renewed `refreshBeforeMs` before it expires.
     */
    oauthbearer?: {
      /**
       * URL of the authorization server's token endpoint.
       */
      tokenUrl: string;
      /**
       * OAuth2 client id.
       */
      clientId: string;
      /**
       * OAuth2 client secret (use `${VAR}`, or better `clientSecretFile`). Redacted in `/config` and logs.
       */
      clientSecret?: string;
      /**
       * Path of a file holding the client secret; instead of `clientSecret`. Read for every token request.
       */
      clientSecretFile?: string;
      /**
       * Space-separated scopes to ask for.
       */
      scope?: string;
      /**
       * `audience` parameter, for servers that want one.
       */
      audience?: string;
      /**
       * `client_secret_basic` (HTTP Basic) or `client_secret_post` (credentials in the form body).
       */
      authMethod: 'client_secret_basic' | 'client_secret_post';
      /**
       * A token is renewed when it has less than this left to live (never later than half-way through its life).
       */
      refreshBeforeMs: number;
      /**
       * SASL/OAUTHBEARER extensions sent with the token, e.g. `logicalCluster` and `identityPoolId` for Confluent Cloud.
       */
      extensions?: {
        /**
         * Value of one SASL extension.
         */
        [k: string]: string | undefined;
      };
    };
  };
  /**
   * How long opening a TCP (and TLS) connection to a broker may take.
   */
  connectionTimeoutMs: number;
  /**
   * How long the SASL handshake with a broker may take.
   */
  authenticationTimeoutMs: number;
  /**
   * How long one Kafka request (metadata, fetch, produce, commit) may wait for its answer before it counts as failed and is retried.
   */
  requestTimeoutMs: number;
  /**
   * How Kafka requests that fail with a retriable error (broker unreachable, leader moved, request timed out) are retried by the admin and consumer clients: exponential backoff with jitter. The bridge producer retries within `bridge.deliveryTimeoutMs` instead.
   */
  retry: {
    /**
     * Attempts after the first one.
     */
    retries: number;
    /**
     * Wait before the first retry; doubles on every further one.
     */
    initialBackoffMs: number;
    /**
     * Cap of the wait between two retries.
     */
    maxBackoffMs: number;
  };
  /**
   * How often the sidecar fetches cluster metadata to decide whether Kafka is reachable (`/readyz` check `kafka`); while it is not, it checks every second.
   */
  healthCheckIntervalMs: number;
  /**
   * What the sidecar does when Kafka refuses its credentials or certificate at start-up (SASL authentication failed, TLS handshake refused): `exit` logs an error naming the mechanism and the broker and exits 1 (the pod restarts and shows the error); `not-ready` keeps running, `/readyz` answers 503 naming the failure, and it keeps retrying (re-reading secret files) until the credentials work. An unreachable broker never exits: it only makes the sidecar not ready.
   */
  onStartupFailure: 'exit' | 'not-ready';
}
/**
 * The REST-to-Kafka bridge listener (Strimzi HTTP bridge shapes): produce over REST and read topic metadata. Off unless enabled, since it needs a reachable Kafka cluster.
 */
export interface BridgeConfig {
  /**
   * Run the bridge listener and connect the shared producer at start-up (readiness waits for it).
   */
  enabled: boolean;
  /**
   * Address the bridge listener binds to. Loopback by default: only the app in the pod may produce.
   */
  host: string;
  /**
   * TCP port of the bridge listener; 0 picks a free port.
   */
  port: number;
  /**
   * Serve the bridge listener over HTTPS (and mTLS when `clientCa` is set). Absent means plain HTTP.
   */
  tls?: TlsConfig;
  /**
   * Largest request body accepted, in bytes; larger bodies are answered 413.
   */
  maxBodyBytes: number;
  /**
   * Most records one produce request may carry; more is answered 422.
   */
  maxRecordsPerRequest: number;
  /**
   * Back-pressure: when the bodies of produce requests not yet acknowledged by Kafka add up to more than this, new requests are answered 429 with `Retry-After`.
   */
  maxInFlightBytes: number;
  /**
   * How long a produce request waits for Kafka to acknowledge its records before answering 503 for the ones not acknowledged.
   */
  deliveryTimeoutMs: number;
  /**
   * Create a topic (with the broker's default partitions and replication) the first time a record is produced to it. Off: producing to an unknown topic answers 404 (40401).
   */
  autoCreateTopics: boolean;
  /**
   * Serve `POST /admin/topics` to create topics.
   */
  topicAdmin: boolean;
  /**
   * How long topic partition counts are cached before they are read again from the cluster.
   */
  metadataMaxAgeMs: number;
  /**
   * Requests with an `Idempotency-Key` header: a repeat within the window answers the first result and produces nothing new (or only the records the first attempt could not get acknowledged).
   */
  idempotency: {
    /**
     * How long an answer is kept for repeats of its key.
     */
    windowMs: number;
    /**
     * Bound on remembered keys; the oldest are forgotten first.
     */
    maxEntries: number;
  };
  /**
   * The one shared, idempotent (acks=all) Kafka producer of the sidecar.
   */
  producer: {
    /**
     * Compression codec of produced batches.
     */
    compression: 'none' | 'gzip';
    /**
     * Most records sent to one partition in one produce request. Records wait while the previous batch of their partition is in flight, so batches grow with load.
     */
    maxBatchRecords: number;
    /**
     * Largest produce batch for one partition, in bytes of keys, values and headers.
     */
    maxBatchBytes: number;
    /**
     * How often a failed produce request is retried by the client before its records are answered 503.
     */
    retries: number;
  };
  /**
   * Settings by topic name.
   */
  topics: {
    /**
     * Settings of one topic.
     */
    [k: string]:
      | {
          /**
           * Path to a JSON Schema file every record value produced to this topic must match (json format only); otherwise the whole request is answered 422 and nothing is produced.
           */
          schema?: string;
        }
      | undefined;
  };
  /**
   * A pull consumer instance (`POST /consumers/{group}`) that gets no request for this long is closed and removed (like the Strimzi bridge's `http.timeoutSeconds`); later requests for it are answered 404 (40403).
   */
  consumerIdleTimeoutMs: number;
  /**
   * Most pull consumer instances this sidecar keeps at once, over all groups; creating one more is answered 429 (42901).
   */
  maxConsumers: number;
  /**
   * Settings of the light-mesh Kafka sidecar's producer API (`POST /producers/{topic}`) that the bridge also serves.
   */
  lightmesh: {
    /**
     * The service id in the `caller_id` header (with `injectCallerId`) and in audit records.
     */
    serviceId: string;
    /**
     * Add a `caller_id` header carrying `serviceId` to every produced record.
     */
    injectCallerId: boolean;
    /**
     * Opt-in: copy the request's `Authorization` header into every produced record as an `Authorization` header. Off by default because it writes credentials into Kafka, where every reader of the topic sees them.
     */
    copyAuthorizationHeader: boolean;
    /**
     * One audit record per produced record (`auditType` `PRODUCER`) and per dead letter handed out or written through `/consumers/deadLetter/active` (`ACTIVE_CONSUMER`) or replayed through `/consumers/deadLetter/reactive` (`REACTIVE_CONSUMER`).
     */
    audit: {
      /**
       * Write audit records.
       */
      enabled: boolean;
      /**
       * `topic`: to `topic`, keyed by correlation id; `log`: as `info` log lines.
       */
      target: 'topic' | 'log';
      /**
       * The audit topic when `target` is `topic`.
       */
      topic: string;
    };
  };
}
/**
 * What happens on SIGTERM: the sidecar reports not-ready at once, keeps serving for `drainDelayMs`, then drains and stops.
 */
export interface ShutdownConfig {
  /**
   * How long the sidecar keeps accepting work after SIGTERM so load balancers notice the failing readiness probe.
   */
  drainDelayMs: number;
  /**
   * How long draining may take after the drain delay before whatever is left is stopped. Keep `drainDelayMs + timeoutMs` below the pod's `terminationGracePeriodSeconds`.
   */
  timeoutMs: number;
}
/**
 * Structured JSON logs on stdout.
 */
export interface LogConfig {
  /**
   * Lowest level that is written; `silent` writes nothing. Overridden by the `LOG_LEVEL` environment variable.
   */
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}
/**
 * OpenTelemetry tracing. Exporter settings come from the standard `OTEL_*` environment variables.
 */
export interface TelemetryConfig {
  /**
   * The `service.name` resource attribute of spans. Overridden by `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`).
   */
  serviceName: string;
}
/**
 * Headers set, added or removed on the request and on the response.
 *
 * This interface was referenced by `MeshConfig`'s JSON-Schema
 * via the `definition` "HeaderRules".
 */
export interface HeaderRulesConfig {
  /**
   * Edits of the request headers before it is forwarded.
   */
  request?: HeaderEditsConfig;
  /**
   * Edits of the response headers before they reach the caller.
   */
  response?: HeaderEditsConfig;
  /**
   * Value of the `Host` header sent upstream.
   */
  host?: string;
}
/**
 * `remove` runs first, then `set` (replaces), then `add` (appends to an existing value).
 *
 * This interface was referenced by `MeshConfig`'s JSON-Schema
 * via the `definition` "HeaderEdits".
 */
export interface HeaderEditsConfig {
  /**
   * Header name → value, replacing any value.
   */
  set: {
    [k: string]: string | undefined;
  };
  /**
   * Header name → value, appended to any value.
   */
  add: {
    [k: string]: string | undefined;
  };
  /**
   * Header names removed.
   */
  remove: string[];
}
/**
 * Server certificate and key (PEM files). Setting `clientCa` turns on mutual TLS.
 *
 * This interface was referenced by `MeshConfig`'s JSON-Schema
 * via the `definition` "Tls".
 */
export interface TlsConfig {
  /**
   * Path to the PEM certificate chain the listener presents.
   */
  cert: string;
  /**
   * Path to the PEM private key of `cert`.
   */
  key: string;
  /**
   * Path to a PEM CA bundle. When set, clients must present a certificate signed by it (mTLS).
   */
  clientCa?: string;
}
/**
 * A DNS name whose A/AAAA records are the endpoints, re-resolved every `intervalMs`.
 *
 * This interface was referenced by `MeshConfig`'s JSON-Schema
 * via the `definition` "EgressDns".
 */
export interface EgressDnsConfig {
  /**
   * Name to resolve, e.g. `orders.shop.svc.cluster.local`.
   */
  name: string;
  /**
   * Port of every resolved endpoint.
   */
  port: number;
  /**
   * `http` or `https` for the resolved endpoints.
   */
  scheme: 'http' | 'https';
  /**
   * How often the name is resolved again.
   */
  intervalMs: number;
}

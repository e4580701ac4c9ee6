/**
 * Two more local broker shapes for tests, from the same cached jars as local-kafka.ts:
 *
 * - `startSecureKafka()`: one KRaft node with a `SASL_SSL` listener (SCRAM-SHA-256/512 users created
 *   by Kafka's own `kafka-storage format --add-scram`, PLAIN users in the JAAS config, a PEM
 *   keystore from a test CA), plus a PLAINTEXT listener for the test's own setup and checks.
 * - `startKafkaCluster()`: three combined broker+controller KRaft nodes on loopback, replication
 *   factor 3 and `min.insync.replicas` 2 by default, where a test can SIGKILL a node by id and start
 *   it again on the same ports and data.
 *
 * Every node is owned by this process (killed on exit even without stop()).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type { TestCertificates } from './certs.js';
import {
  COMMON_NODE_SETTINGS,
  launchKafkaNode,
  propertyValue,
  randomClusterId,
  reservePorts,
  waitUntilReady,
  type KafkaNodeProcess,
  type KafkaProperties,
} from './local-kafka.js';

const HOST = '127.0.0.1';
const DEFAULT_READY_TIMEOUT_MS = 90_000;

/** A PEM value on one properties line: `\n` escapes are read back as newlines by java.util.Properties. */
function pemProperty(pem: string): string {
  return pem.trim().replaceAll('\r', '').split('\n').join('\\n');
}

function jaasValue(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('"', '\\"');
}

export interface SaslUser {
  readonly username: string;
  readonly password: string;
}

export interface SecureKafka {
  /** The `SASL_SSL` listener, `127.0.0.1:<port>`. */
  readonly bootstrap: string;
  /** A PLAINTEXT listener of the same broker, for test setup and independent checks. */
  readonly plaintextBootstrap: string;
  readonly logFile: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface StartSecureKafkaOptions {
  readonly certs: TestCertificates;
  /** Users for SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN alike. */
  readonly users: readonly SaslUser[];
  /** `required` asks clients for a certificate signed by the test CA (mTLS). Default `none`. */
  readonly clientAuth?: 'none' | 'required';
  /**
   * OAUTHBEARER sessions end after this (the broker then asks the client to re-authenticate, with a
   * fresh token once the old one expires). Default 0: sessions last as long as the connection.
   */
  readonly oauthReauthMs?: number;
  readonly readyTimeoutMs?: number;
}

/**
 * One broker with `SASL_SSL` (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, and OAUTHBEARER with Kafka's
 * default validator for unsecured JWTs: `alg: none`, `sub` and `exp` claims) and a PLAINTEXT side door.
 */
export async function startSecureKafka(options: StartSecureKafkaOptions): Promise<SecureKafka> {
  const [securePort, plainPort, controllerPort] = await reservePorts([0, 0, 0]);
  const dataDir = await mkdtemp(join(tmpdir(), 'mesh-sidecar-kafka-secure-'));
  const { certs, users } = options;
  const plainUsers = users
    .map(({ username, password }) => `user_${username}="${jaasValue(password)}"`)
    .join(' ');
  const properties: KafkaProperties = {
    ...COMMON_NODE_SETTINGS,
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@${HOST}:${controllerPort}`,
    listeners: `SASL_SSL://${HOST}:${securePort},PLAINTEXT://${HOST}:${plainPort},CONTROLLER://${HOST}:${controllerPort}`,
    'advertised.listeners': `SASL_SSL://${HOST}:${securePort},PLAINTEXT://${HOST}:${plainPort}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': propertyValue(join(dataDir, 'kraft-logs')),
    'sasl.enabled.mechanisms': 'SCRAM-SHA-512,SCRAM-SHA-256,PLAIN,OAUTHBEARER',
    'listener.name.sasl_ssl.oauthbearer.sasl.jaas.config':
      'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";',
    'listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms': options.oauthReauthMs ?? 0,
    'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_ssl.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
    'ssl.keystore.type': 'PEM',
    'ssl.keystore.certificate.chain': pemProperty(await readFile(certs.brokerCertFile, 'utf8')),
    'ssl.keystore.key': pemProperty(await readFile(certs.brokerKeyFile, 'utf8')),
    'ssl.truststore.type': 'PEM',
    'ssl.truststore.certificates': pemProperty(certs.ca),
    'ssl.client.auth': options.clientAuth ?? 'none',
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'min.insync.replicas': 1,
    'num.partitions': 1,
    'default.replication.factor': 1,
  };
  // Kafka's own tool creates the SCRAM credentials in the cluster metadata at format time.
  const formatArgs = users.flatMap(({ username, password }) =>
    ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => [
      '--add-scram',
      `${mechanism}=[name=${username},password=${password}]`,
    ]),
  );
  let node: KafkaNodeProcess;
  try {
    node = await launchKafkaNode({ dataDir, properties, formatArgs, removeOnStop: dataDir });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const plaintextBootstrap = `${HOST}:${plainPort}`;
  try {
    await waitUntilReady(plaintextBootstrap, node, options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  } catch (error) {
    await node.stop().catch(() => {});
    throw error;
  }
  return {
    bootstrap: `${HOST}:${securePort}`,
    plaintextBootstrap,
    logFile: node.logFile,
    pid: node.pid,
    stop: () => node.stop(),
  };
}

export interface ClusterNode {
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
  readonly bootstrap: string;
  readonly dataDir: string;
  /** The running process, or undefined while killed. */
  readonly process: KafkaNodeProcess | undefined;
}

export interface KafkaCluster {
  /** Every node's client address. */
  readonly bootstrap: string[];
  readonly nodes: readonly ClusterNode[];
  /** SIGKILLs node `id` (a crash: no controlled shutdown, no leadership hand-over). */
  kill(id: number): Promise<void>;
  /** Starts node `id` again on its ports and data; resolves once it answers metadata requests. */
  restart(id: number): Promise<void>;
  /** The leader of a partition as the cluster reports it now (-1 while it has none). */
  leaderOf(topic: string, partition: number): Promise<number>;
  /** The in-sync replicas of a partition. */
  isrOf(topic: string, partition: number): Promise<number[]>;
  /**
   * Creates a topic replicated on every node and resolves once every partition has a leader and a
   * full ISR as seen by every node (KRaft brokers learn of a new topic one after the other).
   * `leader` puts every partition's preferred leader on that node (the other replicas in turns), so
   * one broker leads them all; by default Kafka spreads the leaders.
   */
  createTopic(
    topic: string,
    partitions: number,
    options?: { leader?: number; timeoutMs?: number },
  ): Promise<void>;
  /** Stops every node (SIGTERM, then SIGKILL) and removes the data. Idempotent. */
  stop(): Promise<void>;
}

export interface StartKafkaClusterOptions {
  /** Nodes (each broker and controller). Default 3. */
  readonly size?: number;
  /** Default 2. */
  readonly minInsyncReplicas?: number;
  readonly readyTimeoutMs?: number;
  /** How soon the controller fences a broker that stopped heartbeating. Default 4 s. */
  readonly brokerSessionTimeoutMs?: number;
}

/** A KRaft cluster of combined broker+controller nodes on loopback (replication factor = size). */
export async function startKafkaCluster(options: StartKafkaClusterOptions = {}): Promise<KafkaCluster> {
  const size = options.size ?? 3;
  const ports = await reservePorts(new Array<number>(size * 2).fill(0));
  const root = await mkdtemp(join(tmpdir(), 'mesh-sidecar-kafka-cluster-'));
  const clusterId = randomClusterId();
  const specs = Array.from({ length: size }, (_, index) => {
    const id = index + 1;
    return {
      id,
      port: ports[index * 2],
      controllerPort: ports[index * 2 + 1],
      dataDir: join(root, `node-${id}`),
    };
  });
  const voters = specs.map((s) => `${s.id}@${HOST}:${s.controllerPort}`).join(',');
  const replication = size;
  const minIsr = options.minInsyncReplicas ?? Math.min(2, size);
  const propertiesOf = (spec: (typeof specs)[number]): KafkaProperties => ({
    ...COMMON_NODE_SETTINGS,
    'process.roles': 'broker,controller',
    'node.id': spec.id,
    'controller.quorum.voters': voters,
    listeners: `PLAINTEXT://${HOST}:${spec.port},CONTROLLER://${HOST}:${spec.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${HOST}:${spec.port}`,
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': propertyValue(join(spec.dataDir, 'kraft-logs')),
    'offsets.topic.replication.factor': replication,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': replication,
    'transaction.state.log.min.isr': minIsr,
    'transaction.state.log.num.partitions': 1,
    'default.replication.factor': replication,
    'min.insync.replicas': minIsr,
    'num.partitions': 1,
    'unclean.leader.election.enable': false,
    'broker.session.timeout.ms': options.brokerSessionTimeoutMs ?? 4_000,
    'broker.heartbeat.interval.ms': 500,
    // A restarted follower is back in the ISR soon after it caught up.
    'replica.lag.time.max.ms': 10_000,
  });
  const running = new Map<number, KafkaNodeProcess>();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.allSettled([...running.values()].map((node) => node.stop()));
      running.clear();
      await rm(root, { recursive: true, force: true });
    })();
    return stopping;
  };
  const launch = async (spec: (typeof specs)[number]) => {
    const node = await launchKafkaNode({
      dataDir: spec.dataDir,
      properties: propertiesOf(spec),
      clusterId,
      maxHeap: '384m',
    });
    running.set(spec.id, node);
    return node;
  };
  const bootstrap = specs.map((s) => `${HOST}:${s.port}`);
  const admin = () =>
    new Kafka({
      clientId: 'kafka-cluster-helper',
      brokers: bootstrap,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1_000,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    }).admin();
  const partitionMetadata = async (topic: string, partition: number) => {
    const client = admin();
    try {
      await client.connect();
      const { topics } = await client.fetchTopicMetadata({ topics: [topic] });
      return topics[0]?.partitions.find((p) => p.partitionId === partition);
    } finally {
      await client.disconnect().catch(() => {});
    }
  };
  const specOf = (id: number) => {
    const spec = specs.find((s) => s.id === id);
    if (!spec) throw new Error(`no node ${id} in this cluster (1..${size})`);
    return spec;
  };

  try {
    const nodes = await Promise.all(specs.map(launch));
    // The probe creates a topic with replication factor `size`: ready means every node serves.
    await waitUntilReady(
      bootstrap.join(','),
      nodes,
      options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      (b) => probeCluster(b.split(',')),
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    bootstrap,
    get nodes() {
      return specs.map((spec) => ({
        ...spec,
        bootstrap: `${HOST}:${spec.port}`,
        process: running.get(spec.id),
      }));
    },
    async kill(id) {
      const node = running.get(specOf(id).id);
      if (!node) return;
      running.delete(id);
      await node.kill();
    },
    async restart(id) {
      const spec = specOf(id);
      if (running.has(id)) throw new Error(`node ${id} is running`);
      const node = await launch(spec);
      await waitUntilReady(
        `${HOST}:${spec.port}`,
        node,
        options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
        (b) => answersMetadata(b),
      );
    },
    async leaderOf(topic, partition) {
      return (await partitionMetadata(topic, partition))?.leader ?? -1;
    },
    async isrOf(topic, partition) {
      return [...((await partitionMetadata(topic, partition))?.isr ?? [])].sort();
    },
    async createTopic(topic, partitions, { leader, timeoutMs = 30_000 } = {}) {
      const client = admin();
      try {
        await client.connect();
        const followers = specs.map((spec) => spec.id).filter((id) => id !== leader);
        const replicaAssignment =
          leader === undefined
            ? undefined
            : Array.from({ length: partitions }, (_, partition) => ({
                partition,
                // Followers in a different order per partition, so a failover spreads the leaders.
                replicas: [leader, ...(partition % 2 === 0 ? followers : [...followers].reverse())],
              }));
        await client.createTopics({
          topics: [
            replicaAssignment === undefined
              ? { topic, numPartitions: partitions }
              : { topic, replicaAssignment },
          ],
          waitForLeaders: false,
        });
      } finally {
        await client.disconnect().catch(() => {});
      }
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const settled = await Promise.all(
          specs.map(async (spec) => {
            const single = new Kafka({
              clientId: 'kafka-cluster-helper',
              brokers: [`${HOST}:${spec.port}`],
              logLevel: logLevel.NOTHING,
              retry: { retries: 0 },
            }).admin();
            try {
              await single.connect();
              const { topics } = await single.fetchTopicMetadata({ topics: [topic] });
              const found = topics[0]?.partitions ?? [];
              return (
                found.length === partitions && found.every((p) => p.leader >= 0 && p.isr.length === size)
              );
            } catch {
              return false;
            } finally {
              await single.disconnect().catch(() => {});
            }
          }),
        );
        if (settled.every(Boolean)) return;
        if (Date.now() >= deadline)
          throw new Error(`topic ${topic} not ready on every node after ${timeoutMs} ms`);
        await new Promise((resolveWait) => setTimeout(resolveWait, 200));
      }
    },
    stop,
  };
}

async function answersMetadata(broker: string): Promise<void> {
  const admin = new Kafka({
    clientId: 'kafka-cluster-probe',
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const { brokers } = await admin.describeCluster();
    const [host, port] = broker.split(':');
    if (!brokers.some((b) => b.host === host && String(b.port) === port))
      throw new Error(`${broker} is not registered yet`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Every node answers and registered, and a replicated topic can be created and written. */
async function probeCluster(brokers: string[]): Promise<void> {
  for (const broker of brokers) await answersMetadata(broker);
  const kafka = new Kafka({
    clientId: 'kafka-cluster-ready-probe',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 500 },
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true });
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic: 'kafka-cluster-ready-probe', numPartitions: 1 }],
      waitForLeaders: true,
      timeout: 5_000,
    });
    await producer.connect();
    await producer.send({ topic: 'kafka-cluster-ready-probe', acks: -1, messages: [{ value: 'ready?' }] });
  } finally {
    await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
  }
}

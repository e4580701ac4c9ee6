/**
 * Real Kafka for integration tests, started lazily on first use and shared by the whole run.
 *
 * Where the broker comes from, in order:
 *   1. KAFKA_BOOTSTRAP (comma-separated host:port list): an existing cluster, never stopped here.
 *   2. @testcontainers/kafka, if a container runtime answers (skipped in milliseconds otherwise).
 *   3. scripts/kafka/local-kafka.ts: the pinned Apache Kafka jars run as a local JVM.
 * KAFKA_TEST_BROKER=container|local forces 2 or 3.
 *
 * stopSharedKafka() (wired as mocha's global teardown in global-hooks.ts) stops 2/3; if it is
 * never called the local broker is still killed when the test process exits.
 */
import { randomUUID } from 'node:crypto';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type ITopicConfig,
  type KafkaMessage,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import { startLocalKafka } from '../../scripts/kafka/local-kafka.js';
import { CleanupStack, waitFor } from './wait.js';

/** Confluent Platform 7.9.x ships Apache Kafka 3.9, the version the local broker pins. */
const CONTAINER_IMAGE = process.env['KAFKA_TEST_IMAGE'] ?? 'confluentinc/cp-kafka:7.9.1';
/** The plaintext listener KafkaContainer exposes to the host. */
const CONTAINER_KAFKA_PORT = 9093;

// Producers made straight from kafkaClient() would otherwise warn about the v2 partitioner change.
process.env['KAFKAJS_NO_PARTITIONER_WARNING'] ??= '1';

interface SharedKafka {
  brokers: string[];
  stop(): Promise<void>;
}

let sharedKafka: Promise<SharedKafka> | undefined;
let defaultContext: Promise<KafkaTestContext> | undefined;

/**
 * Bootstrap servers of the shared test broker, starting it on first call. A failed start is
 * memoized too, so the remaining tests fail fast with the same error instead of each retrying.
 */
export async function getKafkaBootstrap(): Promise<string[]> {
  sharedKafka ??= acquireKafka();
  return (await sharedKafka).brokers;
}

async function acquireKafka(): Promise<SharedKafka> {
  const fromEnv = process.env['KAFKA_BOOTSTRAP']
    ?.split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker.length > 0);
  if (fromEnv && fromEnv.length > 0) {
    return { brokers: fromEnv, stop: () => Promise.resolve() };
  }

  const forced = process.env['KAFKA_TEST_BROKER'];
  if (forced !== undefined && forced !== 'container' && forced !== 'local') {
    throw new Error(`KAFKA_TEST_BROKER must be "container" or "local", not "${forced}"`);
  }
  if (forced !== 'local') {
    const container = await startKafkaContainer(forced === 'container');
    if (container) return container;
  }

  const broker = await startLocalKafka();
  return { brokers: [broker.bootstrap], stop: () => broker.stop() };
}

/**
 * Returns undefined when no container runtime answers, or when the container fails to start
 * and the local broker can stand in (unless containers were explicitly required).
 */
async function startKafkaContainer(required: boolean): Promise<SharedKafka | undefined> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    // Fails within milliseconds when there is no Docker/Podman socket, before any image pull.
    await getContainerRuntimeClient();
  } catch (error) {
    if (required) throw error;
    return undefined;
  }
  try {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const container = await new KafkaContainer(CONTAINER_IMAGE)
      .withKraft()
      .withEnvironment({ KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false' })
      .start();
    return {
      brokers: [`${container.getHost()}:${container.getMappedPort(CONTAINER_KAFKA_PORT)}`],
      stop: async () => {
        await container.stop();
      },
    };
  } catch (error) {
    if (required) throw error;
    console.warn(`Kafka container failed to start, using the local broker instead: ${String(error)}`);
    return undefined;
  }
}

/** Stops whatever getKafkaBootstrap() started (nothing for KAFKA_BOOTSTRAP). Safe to call twice. */
export async function stopSharedKafka(): Promise<void> {
  const context = await defaultContext?.catch(() => undefined);
  defaultContext = undefined;
  await context?.close();

  const kafka = sharedKafka;
  sharedKafka = undefined;
  if (!kafka) return;
  let started: SharedKafka;
  try {
    started = await kafka;
  } catch {
    return; // It never started, so there is nothing to stop.
  }
  await started.stop();
}

/** A name no other test (or earlier run against the same broker) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A kafkajs client for the shared broker, quiet unless something throws. */
export async function kafkaClient(clientId = uniqueName('it-client')): Promise<Kafka> {
  return new Kafka({ clientId, brokers: await getKafkaBootstrap(), logLevel: logLevel.NOTHING });
}

/**
 * Per-suite handle on the shared broker that remembers what a test created: topics, consumer
 * groups, producers and consumers. cleanup() (afterEach) undoes all of it; close() (after) also
 * drops the admin connection.
 */
export class KafkaTestContext {
  private adminConnection: Promise<Admin> | undefined;
  private readonly createdTopics = new Set<string>();
  private readonly usedGroupIds = new Set<string>();
  private readonly openClients = new Set<Producer | Consumer>();

  private constructor(
    readonly brokers: string[],
    readonly kafka: Kafka,
  ) {}

  static async create(clientId = uniqueName('it')): Promise<KafkaTestContext> {
    const brokers = await getKafkaBootstrap();
    return new KafkaTestContext(brokers, new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING }));
  }

  /** A context for a broker a test started itself (a secure or multi-node one); close() it in `after`. */
  static forBrokers(brokers: string[], clientId = uniqueName('it')): KafkaTestContext {
    return new KafkaTestContext(brokers, new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING }));
  }

  /** One connected admin client per context. */
  admin(): Promise<Admin> {
    this.adminConnection ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      return admin;
    })();
    return this.adminConnection;
  }

  /** Creates a topic and waits until every partition has a leader; deleted by cleanup(). */
  async createTopic(
    name: string,
    partitions = 1,
    configEntries: ITopicConfig['configEntries'] = [],
  ): Promise<string> {
    const admin = await this.admin();
    // Tracked before the request: a create that times out client-side may still happen.
    this.createdTopics.add(name);
    let created: boolean;
    try {
      created = await admin.createTopics({
        topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1, configEntries }],
        waitForLeaders: true,
      });
    } catch (err) {
      // kafkajs's wait for leaders retries only LEADER_NOT_AVAILABLE; a KRaft broker may answer
      // UNKNOWN_TOPIC_OR_PARTITION for a moment after the create (it failed a CI run): wait here.
      if ((err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      await waitFor(
        async () => {
          const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
          const found = topics[0]?.partitions ?? [];
          return found.length === partitions && found.every((partition) => partition.leader >= 0);
        },
        { timeoutMs: 30_000, intervalMs: 50, what: `a leader for every partition of topic ${name}` },
      );
      created = true;
    }
    if (!created) throw new Error(`topic ${name} already exists; use uniqueName() for test topics`);
    return name;
  }

  async topicExists(name: string): Promise<boolean> {
    const admin = await this.admin();
    return (await admin.listTopics()).includes(name);
  }

  /** Deletes every topic created through this context and waits until the broker lists none of them. */
  async deleteCreatedTopics(timeoutMs = 30_000): Promise<void> {
    if (this.createdTopics.size === 0) return;
    const admin = await this.admin();
    const existing = new Set(await admin.listTopics());
    const toDelete = [...this.createdTopics].filter((topic) => existing.has(topic));
    if (toDelete.length > 0) await admin.deleteTopics({ topics: toDelete, timeout: timeoutMs });
    await waitFor(
      async () => {
        const remaining = new Set(await admin.listTopics());
        return toDelete.every((topic) => !remaining.has(topic));
      },
      { timeoutMs, intervalMs: 100, what: `deletion of topics ${toDelete.join(', ')}` },
    );
    this.createdTopics.clear();
  }

  /** A producer disconnected by cleanup(); uses the Java-compatible default partitioner. */
  producer(config: ProducerConfig = {}): Producer {
    const producer = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...config });
    this.openClients.add(producer);
    return producer;
  }

  /**
   * A consumer disconnected by cleanup(), whose group cleanup() then deletes. Its fetch long-poll
   * is short by default because disconnect() waits for the fetch in flight (5 s by default).
   */
  consumer(config: ConsumerConfig): Consumer {
    const consumer = this.kafka.consumer({ maxWaitTimeInMs: 250, ...config });
    this.openClients.add(consumer);
    this.usedGroupIds.add(config.groupId);
    return consumer;
  }

  /** Disconnects this test's clients, deletes its topics and consumer groups. */
  /**
   * Reads `topic` from the beginning with a fresh consumer group until `count` records have
   * arrived (failing after `timeoutMs`). Sorted by partition, then offset. Pair it with
   * `recordCount` to prove there is nothing more (no duplicate).
   */
  async readTopic(
    topic: string,
    count: number,
    { timeoutMs = 20_000 }: { timeoutMs?: number } = {},
  ): Promise<(KafkaMessage & { partition: number })[]> {
    const consumer = this.consumer({ groupId: uniqueName('it-read') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const records: (KafkaMessage & { partition: number })[] = [];
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        records.push({ ...message, partition });
        return Promise.resolve();
      },
    });
    await waitFor(() => records.length >= count, { timeoutMs, what: `${count} records in ${topic}` });
    await consumer.disconnect();
    this.openClients.delete(consumer);
    return records.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
  }

  /** Records in `topic` by its offsets (end minus start, summed over partitions). */
  async recordCount(topic: string): Promise<number> {
    const offsets = await (await this.admin()).fetchTopicOffsets(topic);
    return offsets.reduce((sum, partition) => sum + Number(partition.high) - Number(partition.low), 0);
  }

  async cleanup(): Promise<void> {
    const clients = [...this.openClients];
    this.openClients.clear();
    const disconnects = await Promise.allSettled(clients.map((client) => client.disconnect()));
    await this.deleteCreatedTopics();
    await this.deleteUsedGroups();
    const failed = disconnects.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async close(): Promise<void> {
    try {
      await this.cleanup();
    } finally {
      const admin = this.adminConnection;
      this.adminConnection = undefined;
      if (admin) await (await admin).disconnect();
    }
  }

  private async deleteUsedGroups(): Promise<void> {
    if (this.usedGroupIds.size === 0) return;
    const groupIds = [...this.usedGroupIds];
    this.usedGroupIds.clear();
    const admin = await this.admin();
    try {
      await admin.deleteGroups(groupIds);
    } catch {
      // Groups only pile up on a long-lived KAFKA_BOOTSTRAP cluster; a group that never got
      // offsets committed, or is still winding down, is not worth failing a test over.
    }
  }
}

function sharedContext(): Promise<KafkaTestContext> {
  defaultContext ??= KafkaTestContext.create();
  return defaultContext;
}

/** createTopic() on a context shared by tests that do not need their own; see deleteCreatedTopics(). */
export async function createTopic(name: string, partitions = 1): Promise<string> {
  return (await sharedContext()).createTopic(name, partitions);
}

/** Deletes the topics made with the module-level createTopic(). */
export async function deleteCreatedTopics(): Promise<void> {
  if (!defaultContext) return;
  await (await defaultContext).deleteCreatedTopics();
}

/**
 * Registers the hooks every broker-backed suite needs and returns what its tests use: a Kafka test
 * context made before the suite (closed after it) and a cleanup stack run after each test, before
 * the context deletes that test's topics and groups. Call it at the top of a `describe`.
 */
export function kafkaSuite(): { readonly cleanup: CleanupStack; readonly kafka: KafkaTestContext } {
  const cleanup = new CleanupStack();
  let kafka: KafkaTestContext | undefined;
  before(async () => {
    kafka = await KafkaTestContext.create();
  });
  after(() => kafka?.close());
  afterEach(async () => {
    await cleanup.run();
    await kafka?.cleanup();
  });
  return {
    cleanup,
    get kafka() {
      if (!kafka) throw new Error('kafkaSuite(): the Kafka context exists only inside hooks and tests');
      return kafka;
    },
  };
}

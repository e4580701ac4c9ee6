import kafkajs, { type Admin, type ITopicMetadata, type PartitionMetadata } from 'kafkajs';
import { MeshError } from '../../services/runtime/errors.js';

// Not among the named exports Node finds in kafkajs' CommonJS module; read it off the default.
const { ConfigResourceTypes } = kafkajs;

/** True when kafkajs says the topic (or partition) does not exist. */
export function isUnknownTopicError(err: unknown): boolean {
  const type = (err as { type?: string } | undefined)?.type;
  return (
    type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
    /does not host this topic-partition|unknown topic/i.test(String(err))
  );
}

/** Maps a failure of a metadata call to the bridge error the client sees. */
export function metadataError(topic: string, err: unknown): MeshError {
  if (isUnknownTopicError(err)) return new MeshError('MESH_TOPIC_NOT_FOUND', `topic ${topic} not found`);
  return new MeshError(
    'MESH_KAFKA_UNAVAILABLE',
    `Kafka metadata for ${topic} unavailable: ${(err as Error).message}`,
    {
      cause: err,
      headers: { 'retry-after': '1' },
    },
  );
}

export interface PartitionInfo {
  partition: number;
  leader: number;
  replicas: { broker: number; leader: boolean; in_sync: boolean }[];
}

export interface TopicInfo {
  name: string;
  configs: Record<string, string>;
  partitions: PartitionInfo[];
}

function toPartitionInfo(partition: PartitionMetadata): PartitionInfo {
  return {
    partition: partition.partitionId,
    leader: partition.leader,
    replicas: partition.replicas.map((broker) => ({
      broker,
      leader: broker === partition.leader,
      in_sync: partition.isr.includes(broker),
    })),
  };
}

/**
 * Topic metadata with a small cache of partition lists, so produce requests do not ask the
 * cluster each time. Lookups of one topic in flight are shared.
 */
export class TopicMetadata {
  private readonly cache = new Map<string, { partitions: PartitionMetadata[]; fetchedAt: number }>();
  private readonly inFlight = new Map<string, Promise<PartitionMetadata[]>>();

  constructor(
    private readonly admin: Admin,
    private readonly maxAgeMs: number,
  ) {}

  /** Partitions of `topic`; rejects with a MeshError (40401 or 50301). */
  async partitions(topic: string): Promise<PartitionMetadata[]> {
    const cached = this.cache.get(topic);
    if (cached && Date.now() - cached.fetchedAt <= this.maxAgeMs) return cached.partitions;
    let pending = this.inFlight.get(topic);
    if (!pending) {
      pending = this.fetch(topic).finally(() => this.inFlight.delete(topic));
      this.inFlight.set(topic, pending);
    }
    return pending;
  }

  /** The leader of a partition as last fetched, without asking the cluster. */
  leaderOf(topic: string, partition: number): number | undefined {
    return this.cache.get(topic)?.partitions.find((p) => p.partitionId === partition)?.leader;
  }

  /** Forgets a topic, after a produce error that suggests its partitions changed. */
  invalidate(topic: string): void {
    this.cache.delete(topic);
  }

  private async fetch(topic: string): Promise<PartitionMetadata[]> {
    let metadata: ITopicMetadata | undefined;
    try {
      ({
        topics: [metadata],
      } = await this.admin.fetchTopicMetadata({ topics: [topic] }));
    } catch (err) {
      throw metadataError(topic, err);
    }
    const partitions = [...(metadata?.partitions ?? [])].sort((a, b) => a.partitionId - b.partitionId);
    if (partitions.length === 0) throw new MeshError('MESH_TOPIC_NOT_FOUND', `topic ${topic} not found`);
    this.cache.set(topic, { partitions, fetchedAt: Date.now() });
    return partitions;
  }

  async listTopics(): Promise<string[]> {
    try {
      const names = await this.admin.listTopics();
      // Like Kafka's own AdminClient.listTopics(): internal topics are not listed.
      return names.filter((name) => !name.startsWith('__')).sort();
    } catch (err) {
      throw new MeshError('MESH_KAFKA_UNAVAILABLE', `cannot list topics: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async describeTopic(topic: string): Promise<TopicInfo> {
    const partitions = await this.partitions(topic);
    let configs: Record<string, string> = {};
    try {
      const described = await this.admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
        includeSynonyms: false,
      });
      configs = Object.fromEntries(
        (described.resources[0]?.configEntries ?? []).map((entry) => [entry.configName, entry.configValue]),
      );
    } catch (err) {
      throw metadataError(topic, err);
    }
    return { name: topic, configs, partitions: partitions.map(toPartitionInfo) };
  }

  async describePartitions(topic: string): Promise<PartitionInfo[]> {
    return (await this.partitions(topic)).map(toPartitionInfo);
  }

  async describePartition(topic: string, partition: number): Promise<PartitionInfo> {
    const found = (await this.partitions(topic)).find((p) => p.partitionId === partition);
    if (!found)
      throw new MeshError('MESH_PARTITION_NOT_FOUND', `partition ${partition} of topic ${topic} not found`);
    return toPartitionInfo(found);
  }

  async partitionOffsets(
    topic: string,
    partition: number,
  ): Promise<{ beginning_offset: number; end_offset: number }> {
    await this.describePartition(topic, partition);
    try {
      const offsets = await this.admin.fetchTopicOffsets(topic);
      const found = offsets.find((o) => o.partition === partition);
      if (!found)
        throw new MeshError('MESH_PARTITION_NOT_FOUND', `partition ${partition} of topic ${topic} not found`);
      return { beginning_offset: Number(found.low), end_offset: Number(found.high) };
    } catch (err) {
      if (err instanceof MeshError) throw err;
      throw metadataError(topic, err);
    }
  }

  async createTopic(name: string, partitions?: number, replicationFactor?: number): Promise<boolean> {
    try {
      return await this.admin.createTopics({
        waitForLeaders: true,
        topics: [
          { topic: name, numPartitions: partitions ?? -1, replicationFactor: replicationFactor ?? -1 },
        ],
      });
    } catch (err) {
      const type = (err as { type?: string }).type;
      const detail = (err as { errors?: { type?: string; message?: string }[] }).errors?.[0];
      if (type === 'TOPIC_ALREADY_EXISTS' || detail?.type === 'TOPIC_ALREADY_EXISTS') return false;
      if (detail?.type === 'INVALID_REPLICATION_FACTOR' || detail?.type === 'INVALID_PARTITIONS') {
        throw new MeshError('MESH_INVALID_RECORD', detail.message ?? detail.type, { cause: err });
      }
      throw new MeshError(
        'MESH_KAFKA_UNAVAILABLE',
        `cannot create topic ${name}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
}

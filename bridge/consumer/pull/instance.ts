import { randomUUID } from 'node:crypto';
import {
  AssignerProtocol,
  type Admin,
  type Assigner,
  type Consumer,
  type EachBatchPayload,
  type IMemberAssignment,
  type Kafka,
  type PartitionAssigner,
} from 'kafkajs';
import { MeshError } from '../../../services/runtime/errors.js';
import type { Logger } from '../../../services/runtime/logging.js';
import type { EmbeddedFormat } from '../../producer/records.js';
import type { FetchedRecord } from './records.js';

export interface PullConsumerSettings {
  readonly group: string;
  readonly name: string;
  readonly format: EmbeddedFormat;
  readonly autoOffsetReset: 'earliest' | 'latest';
  readonly autoCommit: boolean;
  readonly fetchMinBytes: number;
  /** Upper bound of a poll's wait (`consumer.request.timeout.ms`). */
  readonly requestTimeoutMs: number;
  readonly isolationLevel: 'read_committed' | 'read_uncommitted';
}

export interface PullConsumerDeps {
  readonly kafka: Kafka;
  /** The bridge's connected admin client: topic offsets, and commits of assigned (group-less) instances. */
  readonly admin: Admin;
  readonly logger: Logger;
  /** The background buffer's bound: fetching pauses above either, and resumes once polls drain half. */
  readonly bufferMaxRecords: number;
  readonly bufferMaxBytes: number;
  readonly autoCommitIntervalMs: number;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface PartitionOffset extends TopicPartition {
  /** The next offset to read, as Kafka and the Strimzi bridge count it. */
  readonly offset: number;
  readonly metadata?: string;
}

type Mode =
  | { readonly kind: 'subscribe'; readonly topics: readonly string[]; readonly pattern?: string }
  | { readonly kind: 'assign'; readonly partitions: readonly TopicPartition[] };

/** One kafkajs consumer: a subscription or an assignment. Changing either starts a new session. */
interface Session {
  readonly consumer: Consumer;
  readonly mode: Mode;
  /** Partitions this member holds now, by `topic\0partition`. */
  assigned: Map<string, TopicPartition>;
  /** kafkajs' run(): settles once the group is joined (or joining failed for good). */
  started: Promise<void>;
}

/** A seek in flight: batches fetched from anywhere else are dropped (a few times, then trusted). */
interface Fence {
  readonly offset: string;
  misses: number;
}

const FENCE_MAX_MISSES = 3;
/** Long-poll of each fetch; also how long `disconnect()` may wait for the fetch in flight. */
const FETCH_MAX_WAIT_MS = 100;
/** How long closing a session waits for a group join in progress before disconnecting anyway. */
const JOIN_WAIT_ON_CLOSE_MS = 15_000;

const keyOf = (topic: string, partition: number) => `${topic}\0${partition}`;

/**
 * A Strimzi-style pull consumer instance. Records are fetched in the background into a bounded
 * buffer (per-partition pause above the bound, resume once polls drain it); a poll hands out what
 * is buffered. kafkajs only moves its fetch position past records the buffer accepted
 * (`eachBatchAutoResolve: false`), so nothing fetched but refused is lost. Offsets are only
 * committed on request (`POST /offsets`) or by the instance's own auto-commit of what was polled,
 * never by kafkajs.
 */
export class PullConsumerInstance {
  lastUsed = Date.now();
  private busy = 0;
  private session: Session | undefined;
  private buffer: FetchedRecord[] = [];
  private head = 0;
  private bufferedBytes = 0;
  private readonly paused = new Map<string, TopicPartition>();
  private readonly fences = new Map<string, Fence>();
  /** Next offset after the last record handed out, by partition: what an empty commit commits. */
  private readonly polled = new Map<string, PartitionOffset>();
  private readonly autoCommitted = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private readonly autoCommitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private noWait = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly settings: PullConsumerSettings,
    private readonly deps: PullConsumerDeps,
  ) {
    if (settings.autoCommit) {
      this.autoCommitTimer = setInterval(() => void this.autoCommit(), deps.autoCommitIntervalMs);
      this.autoCommitTimer.unref();
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Idle means no request in progress and none for `ms`. */
  idleFor(now: number): number {
    return this.busy > 0 ? 0 : now - this.lastUsed;
  }

  /** Runs one request's work, keeping the instance from idling out meanwhile. */
  async use<T>(work: () => Promise<T> | T): Promise<T> {
    this.busy += 1;
    this.lastUsed = Date.now();
    try {
      return await work();
    } finally {
      this.busy -= 1;
      this.lastUsed = Date.now();
    }
  }

  async subscribe(topics: readonly string[] | undefined, pattern: string | undefined): Promise<void> {
    this.ensureOpen();
    if (this.session?.mode.kind === 'assign') {
      throw new MeshError(
        'MESH_SUBSCRIPTION_CONFLICT',
        'this instance has partitions assigned; subscriptions and assignments are mutually exclusive',
      );
    }
    const existing = await this.deps.admin.listTopics();
    let subscribeTo: readonly string[];
    if (pattern !== undefined) {
      const regexp = new RegExp(`^(?:${pattern})$`);
      subscribeTo = existing.filter((topic) => regexp.test(topic));
    } else {
      const unknown = topics!.filter((topic) => !existing.includes(topic));
      if (unknown.length > 0) {
        throw new MeshError('MESH_TOPIC_NOT_FOUND', `unknown topics: ${unknown.join(', ')}`);
      }
      subscribeTo = topics!;
    }
    await this.endSession(this.settings.autoCommit);
    await this.startSession(
      { kind: 'subscribe', topics: subscribeTo, pattern },
      this.settings.group,
      subscribeTo,
    );
  }

  async assign(partitions: readonly TopicPartition[]): Promise<void> {
    this.ensureOpen();
    if (this.session?.mode.kind === 'subscribe') {
      throw new MeshError(
        'MESH_SUBSCRIPTION_CONFLICT',
        'this instance is subscribed; subscriptions and assignments are mutually exclusive',
      );
    }
    const topics = [...new Set(partitions.map((tp) => tp.topic))];
    const metadata = await this.deps.admin.fetchTopicMetadata({ topics }).catch((err: unknown) => {
      throw new MeshError('MESH_TOPIC_NOT_FOUND', `unknown topics among ${topics.join(', ')}`, {
        cause: err,
      });
    });
    for (const tp of partitions) {
      const topic = metadata.topics.find((entry) => entry.name === tp.topic);
      if (!topic?.partitions.some((entry) => entry.partitionId === tp.partition)) {
        throw new MeshError(
          'MESH_PARTITION_NOT_FOUND',
          `partition ${tp.partition} of ${tp.topic} does not exist`,
        );
      }
    }
    // Where the instance's group left off (else auto.offset.reset): fenced before the first fetch.
    const committed = await this.deps.admin.fetchOffsets({ groupId: this.settings.group, topics });
    const starts: PartitionOffset[] = [];
    for (const { topic, partitions: offsets } of committed) {
      for (const { partition, offset } of offsets) {
        if (
          Number(offset) >= 0 &&
          partitions.some((tp) => tp.topic === topic && tp.partition === partition)
        ) {
          starts.push({ topic, partition, offset: Number(offset) });
        }
      }
    }
    await this.endSession(this.settings.autoCommit);
    for (const start of starts)
      this.fences.set(keyOf(start.topic, start.partition), { offset: String(start.offset), misses: 0 });
    // A private, throw-away group whose only member takes exactly these partitions: kafkajs has no
    // group-less consumer. Nothing is ever committed to it, so Kafka forgets it once it is empty.
    const privateGroup = `${this.settings.group}.mesh-assign.${this.settings.name}.${randomUUID()}`;
    const session = await this.startSession(
      { kind: 'assign', partitions: [...partitions] },
      privateGroup,
      topics,
    );
    for (const start of starts) {
      session.consumer.seek({ topic: start.topic, partition: start.partition, offset: String(start.offset) });
    }
  }

  async unsubscribe(): Promise<void> {
    this.ensureOpen();
    await this.endSession(this.settings.autoCommit);
  }

  /** `GET /subscription`: subscribed topics and, per topic, the partitions held now. */
  subscription(): { topics: string[]; partitions: Record<string, number[]>[] } {
    this.ensureOpen();
    const mode = this.session?.mode;
    const topics = mode?.kind === 'subscribe' ? [...mode.topics] : [];
    const byTopic = new Map<string, number[]>();
    for (const tp of this.assignedPartitions()) {
      byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
    }
    return { topics, partitions: [...byTopic].map(([topic, partitions]) => ({ [topic]: partitions })) };
  }

  /** Partitions held now (by the group's assignment, or the explicit one), sorted. */
  assignedPartitions(): TopicPartition[] {
    return [...(this.session?.assigned.values() ?? [])].sort(
      (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition,
    );
  }

  /** What the admin status page shows of the instance. */
  status(now = Date.now()): {
    group: string;
    name: string;
    format: string;
    autoCommit: boolean;
    mode: 'subscribe' | 'assign' | null;
    topics: string[];
    topicPattern: string | null;
    partitions: { topic: string; partition: number }[];
    pausedPartitions: number;
    bufferedRecords: number;
    bufferedBytes: number;
    idleMs: number;
  } {
    const mode = this.session?.mode;
    return {
      group: this.settings.group,
      name: this.settings.name,
      format: this.settings.format,
      autoCommit: this.settings.autoCommit,
      mode: mode?.kind ?? null,
      topics: mode?.kind === 'subscribe' ? [...mode.topics] : [],
      topicPattern: mode?.kind === 'subscribe' ? (mode.pattern ?? null) : null,
      partitions: this.assignedPartitions().map(({ topic, partition }) => ({ topic, partition })),
      pausedPartitions: this.paused.size,
      bufferedRecords: this.size,
      bufferedBytes: this.bufferedBytes,
      idleMs: this.idleFor(now),
    };
  }

  /**
   * Hands out buffered records, waiting up to `timeoutMs` for the first. At most `maxBytes` of keys
   * and values; a first record larger than that alone is refused (422) and stays buffered.
   */
  async poll(timeoutMs: number, maxBytes: number): Promise<FetchedRecord[]> {
    this.ensureOpen();
    if (!this.session) {
      throw new MeshError(
        'MESH_CONSUMER_NOT_SUBSCRIBED',
        'this consumer instance is neither subscribed to topics nor assigned partitions; POST /subscription or /assignments first',
      );
    }
    if (this.size === 0 && timeoutMs > 0 && !this.noWait)
      await this.waitForRecords(Math.min(timeoutMs, this.settings.requestTimeoutMs));
    this.ensureOpen();
    const out: FetchedRecord[] = [];
    let bytes = 0;
    while (this.head < this.buffer.length) {
      const record = this.buffer[this.head];
      if (bytes + record.bytes > maxBytes) {
        if (out.length === 0) {
          throw new MeshError(
            'MESH_INVALID_RECORD',
            `the next record has ${record.bytes} bytes of key and value, more than max_bytes=${maxBytes}`,
          );
        }
        break;
      }
      out.push(record);
      bytes += record.bytes;
      this.head += 1;
      this.bufferedBytes -= record.bytes;
      this.polled.set(keyOf(record.topic, record.partition), {
        topic: record.topic,
        partition: record.partition,
        offset: Number(record.offset) + 1,
      });
    }
    this.compact();
    this.resumeIfDrained();
    return out;
  }

  /** Commits `offsets`, or, without them, what polls handed out (nothing to do when none). */
  async commit(offsets?: readonly PartitionOffset[]): Promise<void> {
    this.ensureOpen();
    const list = offsets ?? [...this.polled.values()];
    if (list.length === 0) return;
    await this.commitOffsets(list);
  }

  /** `POST /positions`: the next poll of each partition starts at its offset. */
  async seek(offsets: readonly PartitionOffset[]): Promise<void> {
    this.ensureOpen();
    const session = this.requireAssigned(offsets);
    this.seekAll(session, offsets);
    await Promise.resolve();
  }

  /** `POST /positions/beginning|end`. */
  async seekTo(partitions: readonly TopicPartition[], where: 'beginning' | 'end'): Promise<void> {
    this.ensureOpen();
    this.requireAssigned(partitions);
    const offsets: PartitionOffset[] = [];
    for (const topic of new Set(partitions.map((tp) => tp.topic))) {
      const watermarks = await this.deps.admin.fetchTopicOffsets(topic);
      for (const tp of partitions.filter((entry) => entry.topic === topic)) {
        const mark = watermarks.find((entry) => entry.partition === tp.partition);
        if (mark) offsets.push({ ...tp, offset: Number(where === 'beginning' ? mark.low : mark.high) });
      }
    }
    this.ensureOpen();
    this.seekAll(this.requireAssigned(partitions), offsets);
  }

  /** Drain: waiting polls answer what they have at once, and later polls do not wait. */
  stopWaiting(): void {
    this.noWait = true;
    this.wake();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * Closes the kafkajs consumer. An auto-commit instance commits what it handed out first; a
   * manual one has committed what it was told to. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      if (this.autoCommitTimer) clearInterval(this.autoCommitTimer);
      this.wake();
      this.closing = this.endSession(this.settings.autoCommit);
    }
    return this.closing;
  }

  private get size(): number {
    return this.buffer.length - this.head;
  }

  private ensureOpen(): void {
    if (this.closed) {
      throw new MeshError(
        'MESH_CONSUMER_NOT_FOUND',
        `consumer instance ${this.settings.name} of group ${this.settings.group} was closed`,
      );
    }
  }

  private requireAssigned(partitions: readonly TopicPartition[]): Session {
    const session = this.session;
    const missing = partitions.filter((tp) => !session?.assigned.has(keyOf(tp.topic, tp.partition)));
    if (!session || missing.length > 0) {
      throw new MeshError(
        'MESH_CONSUMER_NOT_SUBSCRIBED',
        `no current assignment for ${missing.map((tp) => `${tp.topic}-${tp.partition}`).join(', ')}; poll once after subscribing to get partitions assigned`,
      );
    }
    return session;
  }

  private seekAll(session: Session, offsets: readonly PartitionOffset[]): void {
    for (const { topic, partition, offset } of offsets) {
      const key = keyOf(topic, partition);
      this.purge((record) => record.topic === topic && record.partition === partition);
      this.fences.set(key, { offset: String(offset), misses: 0 });
      // Like Kafka's consumer: the position moves, and an empty commit commits it.
      this.polled.set(key, { topic, partition, offset });
      session.consumer.seek({ topic, partition, offset: String(offset) });
    }
    this.resumeIfDrained();
  }

  private async startSession(mode: Mode, groupId: string, topics: readonly string[]): Promise<Session> {
    const consumer = this.deps.kafka.consumer({
      groupId,
      minBytes: this.settings.fetchMinBytes,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      readUncommitted: this.settings.isolationLevel === 'read_uncommitted',
      allowAutoTopicCreation: false,
      ...(mode.kind === 'assign' ? { partitionAssigners: [fixedAssigner(mode.partitions)] } : {}),
    });
    const session: Session = { consumer, mode, assigned: new Map(), started: Promise.resolve() };
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.onAssignment(session, event.payload.memberAssignment);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.deps.logger.warn(
        { err: event.payload.error, group: this.settings.group, instance: this.settings.name },
        'pull consumer crashed; kafkajs restarts it',
      );
    });
    try {
      await consumer.connect();
      if (topics.length > 0) {
        await consumer.subscribe({
          topics: [...topics],
          fromBeginning: this.settings.autoOffsetReset === 'earliest',
        });
      }
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      throw new MeshError('MESH_KAFKA_UNAVAILABLE', `cannot start the consumer: ${(err as Error).message}`, {
        cause: err,
        headers: { 'retry-after': '1' },
      });
    }
    this.session = session;
    if (topics.length === 0) return session; // a pattern that matches nothing yet: nothing to run
    const running = consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.onBatch(session, payload),
    });
    session.started = running.catch((err: unknown) => {
      this.deps.logger.warn({ err, group: this.settings.group }, 'pull consumer failed to start');
    });
    // seek() needs the group joined; run() resolves once it is.
    if (mode.kind === 'assign') await session.started;
    return session;
  }

  private async endSession(commitPolled: boolean): Promise<void> {
    const session = this.session;
    if (!session) return;
    if (commitPolled && this.polled.size > 0) {
      await this.commitOffsets([...this.polled.values()]).catch((err: unknown) => {
        this.deps.logger.warn({ err, group: this.settings.group }, 'commit on close failed');
      });
    }
    this.session = undefined;
    this.buffer = [];
    this.head = 0;
    this.bufferedBytes = 0;
    this.paused.clear();
    this.fences.clear();
    this.polled.clear();
    this.autoCommitted.clear();
    this.wake();
    // kafkajs keeps a consumer disconnected while still joining running (a fetch loop with no owner):
    // let the join finish first, for a bounded time.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      session.started,
      new Promise((resolve) => (timer = setTimeout(resolve, JOIN_WAIT_ON_CLOSE_MS))),
    ]);
    clearTimeout(timer);
    await session.consumer.disconnect().catch((err: unknown) => {
      this.deps.logger.warn({ err, group: this.settings.group }, 'pull consumer disconnect failed');
    });
  }

  private onAssignment(session: Session, assignment: IMemberAssignment): void {
    if (session !== this.session) return;
    const next = new Map<string, TopicPartition>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) next.set(keyOf(topic, partition), { topic, partition });
    }
    for (const key of session.assigned.keys()) {
      if (next.has(key)) continue;
      // Revoked: its buffered records now belong to another member; an empty commit must not touch it.
      const [topic, partition] = [key.split('\0')[0], Number(key.split('\0')[1])];
      this.purge((record) => record.topic === topic && record.partition === partition);
      this.polled.delete(key);
      this.paused.delete(key);
      this.fences.delete(key);
    }
    session.assigned = next;
  }

  private onBatch(session: Session, payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (session !== this.session || this.closed || payload.isStale()) return Promise.resolve();
    const { topic, partition } = batch;
    const key = keyOf(topic, partition);
    const fence = this.fences.get(key);
    if (fence) {
      const fetchedFrom = (batch as unknown as { fetchedOffset?: string }).fetchedOffset;
      // Fetched before the seek: drop it unresolved, kafkajs fetches again from the new position.
      if (fetchedFrom !== fence.offset && fence.misses < FENCE_MAX_MISSES) {
        fence.misses += 1;
        return Promise.resolve();
      }
      this.fences.delete(key);
    }
    let last: string | undefined;
    for (const message of batch.messages) {
      if (this.isFull()) break;
      const bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0);
      this.buffer.push({
        topic,
        partition,
        offset: message.offset,
        timestamp: message.timestamp,
        key: message.key ?? null,
        value: message.value ?? null,
        headers: message.headers ?? {},
        bytes,
      });
      this.bufferedBytes += bytes;
      last = message.offset;
    }
    const all = batch.messages.length === 0 || last === batch.messages[batch.messages.length - 1].offset;
    if (last !== undefined) payload.resolveOffset(last);
    else if (
      batch.messages.length === 0 &&
      !(batch as unknown as { isEmptyIncludingFiltered(): boolean }).isEmptyIncludingFiltered()
    ) {
      // Only control records or compacted-away offsets: move past them.
      payload.resolveOffset(batch.lastOffset());
    }
    if (!all) {
      this.paused.set(key, { topic, partition });
      session.consumer.pause([{ topic, partitions: [partition] }]);
    }
    if (last !== undefined) this.wake();
    return Promise.resolve();
  }

  private isFull(): boolean {
    return (
      this.size > 0 &&
      (this.size >= this.deps.bufferMaxRecords || this.bufferedBytes >= this.deps.bufferMaxBytes)
    );
  }

  private resumeIfDrained(): void {
    const session = this.session;
    if (!session || this.paused.size === 0) return;
    if (this.size > this.deps.bufferMaxRecords / 2 || this.bufferedBytes > this.deps.bufferMaxBytes / 2)
      return;
    const partitions = [...this.paused.values()];
    this.paused.clear();
    for (const { topic, partition } of partitions)
      session.consumer.resume([{ topic, partitions: [partition] }]);
  }

  private purge(drop: (record: FetchedRecord) => boolean): void {
    const kept = this.buffer.slice(this.head).filter((record) => !drop(record));
    this.buffer = kept;
    this.head = 0;
    this.bufferedBytes = kept.reduce((sum, record) => sum + record.bytes, 0);
  }

  private compact(): void {
    if (this.head === this.buffer.length) {
      this.buffer = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
  }

  private waitForRecords(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  private async commitOffsets(list: readonly PartitionOffset[]): Promise<void> {
    const session = this.session;
    try {
      if (session?.mode.kind === 'subscribe') {
        await session.consumer.commitOffsets(
          list.map(({ topic, partition, offset, metadata }) => ({
            topic,
            partition,
            offset: String(offset),
            ...(metadata === undefined ? {} : { metadata }),
          })),
        );
      } else {
        // Assigned (or idle) instances are not members of their group: a standalone commit, which
        // Kafka accepts while the group has no active members (as for Kafka's assign() consumers).
        for (const topic of new Set(list.map((entry) => entry.topic))) {
          await this.deps.admin.setOffsets({
            groupId: this.settings.group,
            topic,
            partitions: list
              .filter((entry) => entry.topic === topic)
              .map(({ partition, offset }) => ({ partition, offset: String(offset) })),
          });
        }
      }
    } catch (err) {
      throw new MeshError('MESH_KAFKA_UNAVAILABLE', `commit failed: ${(err as Error).message}`, {
        cause: err,
        headers: { 'retry-after': '1' },
      });
    }
  }

  private async autoCommit(): Promise<void> {
    if (this.closed || !this.session) return;
    const changed = [...this.polled.entries()].filter(
      ([key, entry]) => this.autoCommitted.get(key) !== entry.offset,
    );
    if (changed.length === 0) return;
    try {
      await this.commitOffsets(changed.map(([, entry]) => entry));
      for (const [key, entry] of changed) this.autoCommitted.set(key, entry.offset);
    } catch (err) {
      this.deps.logger.warn(
        { err, group: this.settings.group },
        'auto-commit failed; retried at the next interval',
      );
    }
  }
}

/** The partition assigner of an assigned instance: its one member takes exactly `partitions`. */
function fixedAssigner(partitions: readonly TopicPartition[]): PartitionAssigner {
  const byTopic: Record<string, number[]> = {};
  for (const { topic, partition } of partitions) (byTopic[topic] ??= []).push(partition);
  return (): Assigner => ({
    name: 'MeshFixedAssigner',
    version: 1,
    protocol: ({ topics }) => ({
      name: 'MeshFixedAssigner',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
    }),
    assign: ({ members }) =>
      Promise.resolve(
        members.map((member, index) => ({
          memberId: member.memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 1,
            assignment: index === 0 ? byTopic : {},
            userData: Buffer.alloc(0),
          }),
        })),
      ),
  });
}

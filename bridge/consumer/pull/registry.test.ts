import assert from 'node:assert/strict';
import type { Admin, Kafka } from 'kafkajs';
import { pino } from 'pino';
import { MeshError } from '../../../services/runtime/errors.js';
import { PullConsumerRegistry } from './registry.js';

const settings = {
  group: 'g',
  format: 'binary',
  autoOffsetReset: 'latest',
  autoCommit: false,
  fetchMinBytes: 1,
  requestTimeoutMs: 30_000,
  isolationLevel: 'read_uncommitted',
} as const;

function registry(options: { idleTimeoutMs?: number; maxConsumers?: number } = {}): PullConsumerRegistry {
  // Instances only touch Kafka once subscribed or assigned, which these tests never do.
  return new PullConsumerRegistry({
    kafka: {} as Kafka,
    admin: {} as Admin,
    logger: pino({ level: 'silent' }),
    idleTimeoutMs: options.idleTimeoutMs ?? 1_000,
    maxConsumers: options.maxConsumers ?? 10,
  });
}

function codeOf(work: () => unknown): string | undefined {
  try {
    work();
  } catch (err) {
    return err instanceof MeshError ? err.code : 'not a MeshError';
  }
  return undefined;
}

describe('PullConsumerRegistry', () => {
  let current: PullConsumerRegistry | undefined;
  afterEach(async () => {
    await current?.closeAll();
    current = undefined;
  });

  it('generates names, refuses a taken name and finds instances by group and name', () => {
    current = registry();
    const generated = current.create(settings);
    assert.match(generated.settings.name, /^mesh-bridge-consumer-[0-9a-f-]{36}$/);
    current.create({ ...settings, name: 'one' });
    current.create({ ...settings, group: 'other', name: 'one' });
    assert.equal(
      codeOf(() => current!.create({ ...settings, name: 'one' })),
      'MESH_CONSUMER_EXISTS',
    );
    assert.equal(current.get('g', 'one').settings.name, 'one');
    assert.equal(
      codeOf(() => current!.get('g', 'two')),
      'MESH_CONSUMER_NOT_FOUND',
    );
  });

  it('answers 429 over maxConsumers and frees the slot on delete', async () => {
    current = registry({ maxConsumers: 2 });
    current.create({ ...settings, name: 'a' });
    current.create({ ...settings, name: 'b' });
    assert.equal(
      codeOf(() => current!.create({ ...settings, name: 'c' })),
      'MESH_RATE_LIMITED',
    );
    await current.delete('g', 'a');
    assert.equal(current.create({ ...settings, name: 'c' }).settings.name, 'c');
  });

  it('closes instances idle for longer than the timeout, but not one busy with a request', async () => {
    current = registry({ idleTimeoutMs: 1_000 });
    const idle = current.create({ ...settings, name: 'idle' });
    const busy = current.create({ ...settings, name: 'busy' });
    let release!: () => void;
    const request = busy.use(() => new Promise<void>((resolve) => (release = resolve)));
    current.sweep(Date.now() + 500);
    assert.equal(current.size, 2);
    current.sweep(Date.now() + 5_000);
    assert.equal(current.size, 1);
    assert.ok(idle.isClosed);
    assert.equal(
      codeOf(() => current!.get('g', 'idle')),
      'MESH_CONSUMER_NOT_FOUND',
    );
    assert.equal(current.get('g', 'busy'), busy);
    release();
    await request;
    current.sweep(Date.now() + 5_000);
    assert.equal(current.size, 0);
  });

  it('refuses new instances once draining and closes every instance', async () => {
    current = registry();
    const instance = current.create({ ...settings, name: 'a' });
    await current.closeAll();
    assert.ok(instance.isClosed);
    assert.equal(current.size, 0);
    assert.equal(
      codeOf(() => current!.create(settings)),
      'MESH_DRAINING',
    );
  });

  it('answers a poll of an instance without subscription 409 and of a closed one 404', async () => {
    current = registry();
    const instance = current.create(settings);
    await assert.rejects(instance.poll(0, 1_000), { code: 'MESH_CONSUMER_NOT_SUBSCRIBED' });
    await instance.close();
    await assert.rejects(instance.poll(0, 1_000), { code: 'MESH_CONSUMER_NOT_FOUND' });
  });
});

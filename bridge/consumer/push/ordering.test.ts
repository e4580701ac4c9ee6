import assert from 'node:assert/strict';
import { laneOf, runInLanes, Semaphore } from './ordering.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('push ordering', () => {
  it('Semaphore never lets more than its limit through', async () => {
    const semaphore = new Semaphore(2);
    const a = await semaphore.acquire();
    await semaphore.acquire();
    let third = false;
    const pending = semaphore.acquire().then((release) => {
      third = true;
      return release;
    });
    await tick();
    assert.equal(third, false);
    a();
    a(); // a second release of the same slot does nothing
    (await pending)();
    assert.equal(third, true);
    assert.equal(semaphore.inUse, 1);
  });

  it('runs lanes in parallel and items of a lane in order', async () => {
    const items = ['a1', 'b1', 'a2', 'b2', 'a3'];
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const done = runInLanes(
      items,
      (item) => item[0],
      (item) => {
        started.push(item);
        return new Promise<boolean>((resolve) => gates.set(item, () => resolve(true)));
      },
      new Semaphore(10),
    );
    await tick();
    assert.deepEqual(started, ['a1', 'b1'], 'both lanes start at once, one item each');
    gates.get('b1')!();
    await tick();
    assert.deepEqual(started, ['a1', 'b1', 'b2']);
    for (const item of ['a1', 'a2', 'b2', 'a3']) {
      gates.get(item)!();
      await tick();
      await tick();
    }
    assert.equal(await done, true);
    assert.deepEqual(
      started.filter((item) => item.startsWith('a')),
      ['a1', 'a2', 'a3'],
    );
  });

  it('stops every lane when a run answers false', async () => {
    const ran: string[] = [];
    const ok = await runInLanes(
      ['a1', 'a2', 'b1', 'b2'],
      (item) => item[0],
      async (item) => {
        ran.push(item);
        await tick();
        return item !== 'a1';
      },
      new Semaphore(1),
    );
    assert.equal(ok, false);
    assert.ok(!ran.includes('a2'));
    assert.ok(!ran.includes('b2'));
  });

  it('puts a whole partition in one lane, or one lane per key', () => {
    assert.equal(laneOf('partition', Buffer.from('x')), laneOf('partition', null));
    assert.notEqual(laneOf('key', Buffer.from('x')), laneOf('key', Buffer.from('y')));
    assert.notEqual(laneOf('key', null), laneOf('key', Buffer.from('')));
  });
});

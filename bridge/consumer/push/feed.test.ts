import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ConsumedRecord } from './cloudevents.js';
import {
  PartitionFeed,
  StreamProgress,
  type DeliveryFormat,
  type DeliveryResult,
  type FeedCapacity,
  type Halt,
} from './feed.js';
import { Semaphore } from './ordering.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

function record(offset: number, key: string | null = null, bytes = 10): ConsumedRecord {
  return {
    topic: 't',
    partition: 0,
    message: {
      offset: String(offset),
      key: key === null ? null : Buffer.from(key),
      value: Buffer.alloc(bytes),
      timestamp: '0',
      attributes: 0,
      headers: {},
    },
  };
}

/** A scripted app: each delivery waits until the test answers it. */
class ScriptedFormat implements DeliveryFormat {
  readonly calls: { offsets: string[]; answer: (result: DeliveryResult, final?: string[]) => void }[] = [];
  inFlight = 0;
  maxInFlight = 0;

  constructor(
    readonly maxRecords = 1,
    readonly laneOf: (record: ConsumedRecord) => string = () => '',
  ) {}

  readonly deliver = (
    records: readonly ConsumedRecord[],
    signal: AbortSignal,
    markFinal: (offsets: readonly string[]) => void,
  ): Promise<DeliveryResult> => {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const offsets = records.map((r) => r.message.offset);
    return new Promise((resolve) => {
      const answer = (result: DeliveryResult, final = result === 'final' ? offsets : []) => {
        this.inFlight -= 1;
        markFinal(final);
        resolve(result);
      };
      this.calls.push({ offsets, answer });
      // Like a backoff wait: an aborted signal ends it.
      signal.addEventListener('abort', () => undefined, { once: true });
    });
  };

  /** Answers the oldest unanswered delivery. */
  async next(result: DeliveryResult = 'final', final?: string[]): Promise<string[]> {
    await tick();
    const call = this.calls.shift();
    assert.ok(call, 'a delivery is in flight');
    call.answer(result, final);
    await tick();
    return call.offsets;
  }
}

interface Harness {
  feed: PartitionFeed;
  format: ScriptedFormat;
  committed: string[];
  halts: Halt[];
  settled: { reason: Halt; resumeFrom: string | undefined }[];
}

function harness(
  format = new ScriptedFormat(),
  capacity: FeedCapacity = { records: 1_000, bytes: 1 << 20 },
  semaphore = new Semaphore(16),
): Harness {
  const h: Harness = { format, committed: [], halts: [], settled: [], feed: undefined! };
  h.feed = new PartitionFeed({
    format,
    semaphore,
    capacity,
    onFinal: (last) => h.committed.push(last),
    onHalt: (reason) => h.halts.push(reason),
    onSettled: (reason, resumeFrom) => h.settled.push({ reason, resumeFrom }),
  });
  return h;
}

describe('push prefetch feed', () => {
  describe('StreamProgress', () => {
    it('passes an offset handed twice (a re-fetch after a pause) once it is final', () => {
      // A record fetched again must not hold the final prefix back until its second copy is
      // marked: only one copy is delivered. (A faster variant that kept offsets in order and
      // skipped only the set lookup got stuck here and made the SIGTERM drain test commit late.)
      const progress = new StreamProgress();
      for (const offset of ['5', '6', '6', '7']) progress.append(offset);
      assert.equal(progress.markFinal('5'), '5');
      assert.equal(progress.markFinal('6'), '6');
      assert.equal(progress.markFinal('7'), '7');
      assert.equal(progress.size, 0);
    });

    it('advances over the contiguous final prefix of a growing stream', () => {
      const progress = new StreamProgress();
      for (const o of ['3', '7', '8']) progress.append(o);
      assert.equal(progress.markFinal('7'), undefined);
      assert.equal(progress.firstPending, '3');
      assert.equal(progress.markFinal('3'), '7');
      progress.append('20');
      assert.equal(progress.markFinal('99'), undefined, 'unknown offsets are ignored');
      assert.equal(progress.markFinal('8'), '8');
      assert.equal(progress.size, 1);
      assert.equal(progress.firstPending, '20');
      progress.dropPending();
      assert.equal(progress.firstPending, undefined);
      assert.equal(progress.lastFinal, '8', 'the final prefix survives dropping what is pending');
      assert.equal(progress.markFinal('20'), undefined);
    });

    it('keeps working across its internal compaction', () => {
      const progress = new StreamProgress();
      for (let i = 0; i < 5_000; i++) progress.append(String(i));
      for (let i = 0; i < 4_000; i++) assert.equal(progress.markFinal(String(i)), String(i));
      assert.equal(progress.firstPending, '4000');
      assert.equal(progress.markFinal('4001'), undefined);
      assert.equal(progress.markFinal('4000'), '4001');
    });

    it('matches a set-based model for any order of finishing, repeats and unknown offsets', () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 1_000 }), { minLength: 1, maxLength: 60 }),
          fc.array(fc.oneof(fc.nat(80), fc.constant(-1)), { maxLength: 120 }),
          (gaps, picks) => {
            // Ascending offsets with gaps (a compacted topic), across digit-count boundaries.
            let offset = 95;
            const offsets = gaps.map((gap) => String((offset += gap)));
            const progress = new StreamProgress();
            const pending = new Set<string>();
            let prefix = 0;
            let last: string | undefined;
            for (const o of offsets) {
              progress.append(o);
              pending.add(o);
            }
            for (const pick of picks) {
              const o = pick < 0 ? '7' : pick < offsets.length ? offsets[pick] : String(1e9 + pick);
              let expected: string | undefined;
              if (pending.delete(o)) {
                const before = prefix;
                while (prefix < offsets.length && !pending.has(offsets[prefix])) prefix += 1;
                if (prefix > before) expected = last = offsets[prefix - 1];
              }
              assert.equal(progress.markFinal(o), expected);
              assert.equal(progress.size, pending.size);
              assert.equal(progress.firstPending, offsets[prefix]);
              assert.equal(progress.lastFinal, last);
            }
          },
        ),
        { numRuns: 500 },
      );
    });
  });

  it('offers a lane its next records to prepare while a delivery is in flight, not once halted', async () => {
    const prepared: string[][] = [];
    const format = Object.assign(new ScriptedFormat(2), {
      prepare: (records: readonly ConsumedRecord[]) => prepared.push(records.map((r) => r.message.offset)),
    });
    const h = harness(format);
    for (let i = 0; i < 5; i++) h.feed.push(record(i));
    await tick();
    await tick();
    assert.deepEqual(prepared, [['2', '3']], 'the next batch, left in the queue');
    assert.deepEqual(await format.next(), ['0', '1']);
    await tick();
    assert.deepEqual(prepared, [['2', '3'], ['4']]);
    assert.deepEqual(await format.next(), ['2', '3'], 'what was prepared is what is delivered');
    h.feed.push(record(5));
    h.feed.halt('stopped');
    await format.next();
    await tick();
    assert.deepEqual(prepared, [['2', '3'], ['4']], 'nothing is prepared for a halted feed');
  });

  it('partition lane: one delivery at a time, in offset order, commits each final prefix', async () => {
    const h = harness();
    for (let i = 0; i < 5; i++) assert.equal(h.feed.push(record(i)), true);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push(...(await h.format.next()));
    assert.deepEqual(order, ['0', '1', '2', '3', '4']);
    assert.equal(h.format.maxInFlight, 1);
    assert.deepEqual(h.committed, ['0', '1', '2', '3', '4']);
    assert.equal(h.feed.position, '5');
    await h.feed.idle();
  });

  it('key lanes run in parallel within the semaphore, in order per key, committing only the prefix', async () => {
    const format = new ScriptedFormat(1, (r) => r.message.key!.toString());
    const h = harness(format, { records: 1_000, bytes: 1 << 20 }, new Semaphore(2));
    h.feed.push(record(0, 'a'));
    h.feed.push(record(1, 'b'));
    h.feed.push(record(2, 'c'));
    h.feed.push(record(3, 'a'));
    await tick();
    assert.equal(format.inFlight, 2, 'capped by the semaphore');
    assert.deepEqual(
      format.calls.map((c) => c.offsets[0]),
      ['0', '1'],
    );
    // b (offset 1) finishes first: nothing committable yet, offset 0 is not final.
    format.calls[1].answer('final');
    format.calls.splice(1, 1);
    await tick();
    assert.deepEqual(h.committed, []);
    await format.next(); // a@0 → prefix 0..1
    assert.deepEqual(h.committed, ['1']);
    const rest = new Set<string>();
    while (format.calls.length > 0 || h.feed.pending > 0) rest.add((await format.next())[0]);
    assert.deepEqual([...rest].sort(), ['2', '3']);
    assert.equal(h.committed.at(-1), '3');
    assert.ok(format.maxInFlight <= 2);
  });

  it('a batch format takes up to maxRecords of the records pushed together', async () => {
    const format = new ScriptedFormat(4);
    const h = harness(format);
    for (let i = 0; i < 10; i++) h.feed.push(record(i));
    assert.deepEqual(await format.next(), ['0', '1', '2', '3']);
    assert.deepEqual(await format.next(), ['4', '5', '6', '7']);
    assert.deepEqual(await format.next(), ['8', '9']);
    assert.deepEqual(h.committed, ['3', '7', '9']);
  });

  it('is full at its record bound and has room again as records become final', async () => {
    const h = harness(undefined, { records: 3, bytes: 1 << 20 });
    for (let i = 0; i < 3; i++) h.feed.push(record(i));
    assert.equal(h.feed.full, true);
    let room = false;
    void h.feed.space().then(() => (room = true));
    await tick();
    assert.equal(room, false);
    await h.format.next();
    assert.equal(h.feed.full, false);
    assert.equal(room, true);
  });

  it('is full at its byte bound', () => {
    const h = harness(undefined, { records: 100, bytes: 25 });
    h.feed.push(record(0, null, 10));
    h.feed.push(record(1, null, 10));
    assert.equal(h.feed.full, false);
    h.feed.push(record(2, null, 10));
    assert.equal(h.feed.full, true);
  });

  it('app down mid-stream with a full queue: drops the queue, commits nothing past the first undelivered record, and delivers everything after recovery', async () => {
    const h = harness(undefined, { records: 5, bytes: 1 << 20 });
    for (let i = 0; i < 5; i++) h.feed.push(record(i));
    assert.equal(h.feed.full, true);
    await h.format.next(); // 0 delivered
    await h.format.next(); // 1 delivered
    await h.format.next('app-down'); // 2: the app refuses connections
    assert.deepEqual(h.halts, ['app-down']);
    assert.deepEqual(h.settled, [{ reason: 'app-down', resumeFrom: '2' }]);
    assert.deepEqual(h.committed, ['0', '1']);
    assert.equal(h.format.calls.length, 0, 'no queued record was delivered after the halt');
    assert.equal(h.feed.halted, false, 'open again once settled');
    assert.equal(h.feed.position, '2');

    // The partition is fetched again from offset 2 (kafkajs may hand over older records too).
    for (let i = 0; i < 8; i++) h.feed.push(record(i));
    const delivered: string[] = [];
    while (h.feed.pending > 0) delivered.push(...(await h.format.next()));
    assert.deepEqual(
      delivered,
      ['2', '3', '4', '5', '6', '7'],
      'final records below the resume point are skipped',
    );
    assert.deepEqual(h.committed.at(-1), '7');
    for (let i = 1; i < h.committed.length; i++)
      assert.ok(Number(h.committed[i]) > Number(h.committed[i - 1]));
  });

  it('a halt while records are queued (revoke) lets the delivery in flight finish and loses nothing', async () => {
    const h = harness();
    for (let i = 10; i < 15; i++) h.feed.push(record(i));
    await h.format.next(); // 10 delivered
    await tick();
    assert.equal(h.format.calls.length, 1, '11 in flight');
    h.feed.halt('stopped');
    assert.equal(h.feed.halted, true);
    assert.equal(h.feed.push(record(15)), false, 'a halting feed takes nothing');
    assert.deepEqual(h.settled, [], 'waits for the delivery in flight');
    let settled = false;
    void h.feed.settled().then(() => (settled = true));
    await h.format.next(); // 11 finishes and is final
    assert.equal(settled, true);
    assert.deepEqual(h.committed, ['10', '11']);
    assert.deepEqual(h.settled, [{ reason: 'stopped', resumeFrom: '12' }]);
    assert.equal(h.format.calls.length, 0);
    assert.equal(h.feed.position, '12');
  });

  it('a drain halt (fillGaps) delivers the queued records below one already delivered, so the commit covers it', async () => {
    const format = new ScriptedFormat(1, (r) => r.message.key!.toString());
    const run = async (fillGaps: boolean) => {
      const h = harness(format);
      const answer = async (offset: string) => {
        await tick();
        const index = format.calls.findIndex((call) => call.offsets[0] === offset);
        assert.ok(index >= 0, `${offset} is in flight`);
        format.calls.splice(index, 1)[0].answer('final');
        await tick();
      };
      // Lane a: 0 then 1; lane b: 2 then 3.
      for (const [offset, key] of [
        [0, 'a'],
        [1, 'a'],
        [2, 'b'],
        [3, 'b'],
      ] as const)
        h.feed.push(record(offset, key));
      await answer('2'); // lane b moves on to 3 while 0 (lane a) is still in flight: 1 waits below 3
      h.feed.halt('stopped', fillGaps);
      await answer('3');
      await answer('0');
      if (fillGaps) await answer('1');
      await tick();
      assert.equal(format.calls.length, 0);
      return h;
    };
    const plain = await run(false);
    assert.deepEqual(
      plain.settled,
      [{ reason: 'stopped', resumeFrom: '1' }],
      'plain: 1 dropped, 2 and 3 will come again',
    );
    assert.deepEqual(plain.committed, ['0']);
    const draining = await run(true);
    assert.deepEqual(draining.settled, [{ reason: 'stopped', resumeFrom: undefined }]);
    assert.deepEqual(draining.committed, ['0', '3'], 'the commit covers everything delivered');
  });

  it('a blocked record halts the partition; app-down and blocked win over a plain stop', async () => {
    const format = new ScriptedFormat(1, (r) => r.message.key!.toString());
    const h = harness(format);
    h.feed.push(record(0, 'a'));
    h.feed.push(record(1, 'b'));
    await tick();
    h.feed.halt('stopped');
    await format.next('blocked');
    await format.next('final');
    assert.deepEqual(h.halts, ['stopped', 'blocked']);
    assert.deepEqual(h.settled, [{ reason: 'blocked', resumeFrom: '0' }]);
    assert.deepEqual(h.committed, [], 'offset 1 is final but 0 is not: nothing to commit');
  });

  it('a delivery that throws halts the partition as blocked', async () => {
    const errors: unknown[] = [];
    const settled: Halt[] = [];
    const feed = new PartitionFeed({
      format: {
        maxRecords: 1,
        laneOf: () => '',
        deliver: () => Promise.reject(new Error('bug')),
      },
      semaphore: new Semaphore(1),
      capacity: { records: 10, bytes: 1 << 20 },
      onFinal: () => assert.fail('nothing is final'),
      onSettled: (reason) => settled.push(reason),
      onError: (err) => errors.push(err),
    });
    feed.push(record(0));
    await tick();
    await tick();
    assert.equal(errors.length, 1);
    assert.deepEqual(settled, ['blocked']);
  });

  it('idle() resolves once every record taken is final', async () => {
    const h = harness();
    h.feed.push(record(0));
    h.feed.push(record(1));
    let idle = false;
    void h.feed.idle().then(() => (idle = true));
    await h.format.next();
    assert.equal(idle, false);
    await h.format.next();
    assert.equal(idle, true);
  });
});

import assert from 'node:assert/strict';
import { OffsetCommitter, PartitionProgress, type TopicPartitionOffset } from './commit-tracker.js';

describe('push commit tracking', () => {
  describe('PartitionProgress', () => {
    it('advances only over a contiguous final prefix', () => {
      const progress = new PartitionProgress(['10', '11', '12', '13']);
      assert.equal(progress.markFinal('12'), undefined);
      assert.equal(progress.lastFinal, undefined);
      assert.equal(progress.markFinal('10'), '10');
      assert.equal(progress.markFinal('11'), '12');
      assert.equal(progress.done, false);
      assert.equal(progress.markFinal('13'), '13');
      assert.equal(progress.done, true);
    });

    it('handles offset gaps (compacted topics) by position, not arithmetic', () => {
      const progress = new PartitionProgress(['3', '7', '20']);
      assert.equal(progress.markFinal('7'), undefined);
      assert.equal(progress.markFinal('3'), '7');
      assert.equal(progress.markFinal('99'), undefined);
    });
  });

  describe('OffsetCommitter', () => {
    const make = (commit: (offsets: TopicPartitionOffset[]) => Promise<void>, maxRecords = 1_000) =>
      new OffsetCommitter({ commit, intervalMs: 60_000, maxRecords });

    it('commits the next offset (last final + 1), the highest per partition', async () => {
      const commits: TopicPartitionOffset[][] = [];
      const committer = make((offsets) => {
        commits.push(offsets);
        return Promise.resolve();
      });
      committer.advance('t', 0, '4');
      committer.advance('t', 0, '9');
      committer.advance('t', 1, '2');
      await committer.flush();
      assert.deepEqual(commits, [
        [
          { topic: 't', partition: 0, offset: '10' },
          { topic: 't', partition: 1, offset: '3' },
        ],
      ]);
      await committer.flush();
      assert.equal(commits.length, 1, 'nothing pending, nothing sent');
    });

    it('flushes by record count', async () => {
      let resolveCommit!: (offsets: TopicPartitionOffset[]) => void;
      const committed = new Promise<TopicPartitionOffset[]>((resolve) => (resolveCommit = resolve));
      const committer = make((offsets) => {
        resolveCommit(offsets);
        return Promise.resolve();
      }, 3);
      committer.advance('t', 0, '0');
      committer.advance('t', 0, '1');
      committer.advance('t', 0, '2');
      assert.deepEqual(await committed, [{ topic: 't', partition: 0, offset: '3' }]);
    });

    it('keeps offsets of a failed commit pending', async () => {
      let fail = true;
      const commits: TopicPartitionOffset[][] = [];
      const committer = make((offsets) => {
        if (fail) return Promise.reject(new Error('coordinator moved'));
        commits.push(offsets);
        return Promise.resolve();
      });
      committer.advance('t', 0, '5');
      await assert.rejects(committer.flush(), /coordinator moved/);
      fail = false;
      await committer.flush();
      assert.deepEqual(commits, [[{ topic: 't', partition: 0, offset: '6' }]]);
    });

    it('an urgent flush goes out beside a commit under way; a failed older commit never moves back', async () => {
      const sent: { offsets: TopicPartitionOffset[]; settle: (err?: Error) => void }[] = [];
      const committer = make(
        (offsets) =>
          new Promise<void>((resolve, reject) =>
            sent.push({ offsets, settle: (err) => (err ? reject(err) : resolve()) }),
          ),
      );
      committer.advance('t', 0, '4');
      const first = committer.flush();
      committer.advance('t', 0, '9');
      const urgent = committer.flush(true);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        sent.map((c) => c.offsets[0].offset),
        ['5', '10'],
        'the urgent commit did not wait for the first one',
      );
      sent[1].settle();
      await urgent;
      sent[0].settle(new Error('generation moved on'));
      await assert.rejects(first, /generation moved on/);
      assert.deepEqual(committer.pendingOffsets, [], 'offset 5 is not pending again: 10 is committed');
    });

    it('forgets partitions no longer owned', async () => {
      const commits: TopicPartitionOffset[][] = [];
      const committer = make((offsets) => {
        commits.push(offsets);
        return Promise.resolve();
      });
      committer.advance('t', 0, '5');
      committer.advance('t', 1, '5');
      committer.retainOnly((_topic, partition) => partition === 1);
      await committer.flush();
      assert.deepEqual(commits, [[{ topic: 't', partition: 1, offset: '6' }]]);
    });
  });
});

import assert from 'node:assert/strict';
import type { TopicMessages } from 'kafkajs';
import { UnitWriter, type Final, type UnitSink } from './unit.js';

function recordingSink(failSend = false) {
  const calls: string[] = [];
  const sent: TopicMessages[][] = [];
  let release: (() => void) | undefined;
  const sink: UnitSink = {
    send: async (topicMessages) => {
      calls.push('send');
      sent.push(topicMessages);
      // The first write stays under way until the test lets it go.
      if (sent.length === 1) await new Promise<void>((resolve) => (release = resolve));
      if (failSend) throw new Error('broker says no');
    },
    commit: (offset) => {
      calls.push(`commit ${offset}`);
      return Promise.resolve();
    },
    abort: () => {
      calls.push('abort');
      return Promise.resolve();
    },
  };
  return { sink, calls, sent, release: () => release?.() };
}

const out = (topic: string, value: string): Final => ({
  kind: 'outputs',
  outputs: [{ topic, message: { value } }],
  count: 1,
});
const values = (batch: TopicMessages[]) =>
  batch.flatMap((t) => t.messages.map((m) => `${t.topic}:${String(m.value)}`));

describe('processor units', () => {
  it('writes in offset order, never past the final prefix, and commits the offset after it', async () => {
    const { sink, calls, sent, release } = recordingSink();
    const unit = new UnitWriter(['10', '11', '12', '13'], sink, 'dlq');
    unit.final('11', out('a', 'eleven'));
    assert.equal(sent.length, 0, '11 waits for 10');
    unit.final('10', out('a', 'ten'));
    assert.deepEqual(values(sent[0]), ['a:ten', 'a:eleven']);
    // While the first write is under way, what becomes final goes with the next one.
    unit.final('12', { kind: 'dead-letter', messages: [{ value: 'bad' }], count: 1 });
    assert.equal(sent.length, 1);
    release();
    const result = await unit.finish();
    assert.deepEqual(values(sent[1]), ['dlq:bad']);
    assert.deepEqual(calls, ['send', 'send', 'commit 13']);
    assert.equal(result.lastFinal, '12');
    assert.deepEqual(result.counts, { success: 2, dead_letter: 1, dropped: 0 });
    assert.deepEqual(
      [...result.written],
      [
        ['a', 2],
        ['dlq', 1],
      ],
    );
  });

  it('writes at least writeBatch records at a time while running, the rest on finish', async () => {
    const { sink, calls, sent, release } = recordingSink();
    const unit = new UnitWriter(['0', '1', '2', '3', '4'], sink, undefined, undefined, 2);
    unit.final('0', out('a', '0'));
    assert.equal(sent.length, 0);
    unit.final('1', out('a', '1'));
    assert.deepEqual(values(sent[0]), ['a:0', 'a:1']);
    unit.final('2', out('a', '2'));
    release();
    await unit.finish();
    assert.deepEqual(values(sent[1]), ['a:2']);
    assert.deepEqual(calls, ['send', 'send', 'commit 3']);
  });

  it('commits filtered and dropped records without writing anything', async () => {
    const { sink, calls } = recordingSink();
    const unit = new UnitWriter(['0', '1', '2'], sink, undefined);
    unit.final('0', { kind: 'outputs', outputs: [], count: 1 });
    unit.final('1', { kind: 'covered' });
    unit.final('2', { kind: 'dropped', count: 1 });
    const result = await unit.finish();
    assert.deepEqual(calls, ['commit 3']);
    assert.deepEqual(result.counts, { success: 1, dead_letter: 0, dropped: 1 });
  });

  it('aborts instead of committing when nothing is final', async () => {
    const { sink, calls } = recordingSink();
    const unit = new UnitWriter(['5', '6'], sink, undefined);
    unit.final('6', out('a', 'six'));
    const result = await unit.finish();
    assert.equal(result.lastFinal, undefined);
    assert.deepEqual(calls, ['abort']);
  });

  it('stops the unit, aborts and rejects when a write fails', async () => {
    const { sink, calls, release } = recordingSink(true);
    let stopped: unknown;
    const unit = new UnitWriter(['0', '1'], sink, undefined, (err) => (stopped = err));
    unit.final('0', out('a', 'zero'));
    release();
    await assert.rejects(unit.finish(), /broker says no/);
    assert.match(String(stopped), /broker says no/);
    assert.ok(unit.failed);
    unit.final('1', out('a', 'one'));
    assert.deepEqual(calls, ['send', 'abort']);
  });
});

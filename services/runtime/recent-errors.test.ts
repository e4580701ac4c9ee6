import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from './logging.js';
import { RecentErrors } from './recent-errors.js';

function collectingStream(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, lines };
}

describe('RecentErrors', () => {
  it('keeps the warnings and errors a logger writes, newest first, and passes every line on', () => {
    const recent = new RecentErrors();
    const { stream, lines } = collectingStream();
    const logger = createLogger({ level: 'debug', destination: recent.tee(stream) });
    logger.info('hello');
    logger.warn({ subscription: 'orders' }, 'partition paused');
    logger.error({ err: new Error('broker gone'), component: 'bridge' }, 'producer failed');
    logger.debug('details');
    assert.equal(lines.length, 4, 'every line reaches the destination');
    assert.deepEqual(
      recent.list().map(({ level, msg, source, error }) => ({ level, msg, source, error })),
      [
        { level: 'error', msg: 'producer failed', source: 'bridge', error: 'broker gone' },
        { level: 'warn', msg: 'partition paused', source: 'orders', error: undefined },
      ],
    );
    assert.match(recent.list()[0].time, /^\d{4}-\d{2}-\d{2}T/);
  });

  it('is bounded: the oldest entries go first', () => {
    const recent = new RecentErrors(3);
    for (let i = 0; i < 5; i++)
      recent.observeLine(JSON.stringify({ level: 'warn', time: `t${i}`, msg: `m${i}` }));
    assert.deepEqual(
      recent.list().map((entry) => entry.msg),
      ['m4', 'm3', 'm2'],
    );
  });

  it('ignores lines below warn and lines that are not JSON', () => {
    const recent = new RecentErrors();
    recent.observeLine('{"level":"info","msg":"x"}');
    recent.observeLine('{"level":"warn" not json');
    recent.observeLine('plain text');
    assert.deepEqual(recent.list(), []);
  });
});

import assert from 'node:assert/strict';
import { ConfigError, validateConfig } from '../../services/runtime/config.js';

function problems(doc: unknown): string[] {
  try {
    validateConfig(doc);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.pointer}: ${p.message}`);
    throw err;
  }
  return [];
}

describe('processors config', () => {
  it('fills the defaults: exactly once, single mode, partition ordering', () => {
    const config = validateConfig({
      processors: [{ name: 'p', topics: ['in'], group: 'g', outputTopics: ['out'] }],
    });
    assert.deepEqual(config.processors[0], {
      name: 'p',
      topics: ['in'],
      group: 'g',
      outputTopics: ['out'],
      path: '/',
      guarantee: 'exactly_once',
      mode: 'single',
      maxBatch: 100,
      ordering: 'partition',
      maxConcurrency: 16,
      timeoutMs: 10_000,
      retry: { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 10_000 },
      autoOffsetReset: 'latest',
      commitRecords: 500,
      sessionTimeoutMs: 10_000,
    });
  });

  it('refuses processors whose fields contradict each other, naming each pointer', () => {
    assert.deepEqual(
      problems({
        subscriptions: [{ name: 's', group: 'shared', topics: ['a'] }],
        processors: [
          { name: 'p', topics: ['in'], group: 'shared', outputTopics: ['out'] },
          { name: 'p', topics: ['in'], group: 'g2', outputTopics: ['out'], onPoison: 'deadLetter' },
          {
            name: 'q',
            topics: ['in'],
            group: 'g2',
            outputTopics: ['out'],
            retry: { initialBackoffMs: 500, maxBackoffMs: 100 },
          },
        ],
      }),
      [
        '/processors/0/group: group "shared" is already used by another processor or subscription',
        '/processors/1/name: duplicate processor name "p"',
        '/processors/1/onPoison: deadLetter needs deadLetterTopic',
        '/processors/2/group: group "g2" is already used by another processor or subscription',
        '/processors/2/retry/initialBackoffMs: must not exceed maxBackoffMs',
      ],
    );
  });

  it('requires input topics, a group and allowed output topics', () => {
    assert.deepEqual(problems({ processors: [{ name: 'p', guarantee: 'maybe' }] }).sort(), [
      '/processors/0/group: is required',
      '/processors/0/guarantee: must be one of: exactly_once, at_least_once',
      '/processors/0/outputTopics: is required',
      '/processors/0/topics: is required',
    ]);
  });
});

/**
 * Replays the consumer exchange the Strimzi HTTP bridge documents (its OpenAPI examples and the
 * "Kafka Bridge quickstart": create a consumer, subscribe, produce, poll, commit, seek, unsubscribe,
 * delete) and checks that every answer has the documented status and shape. Where this bridge
 * differs on purpose (five-digit `error_code`s, 409 for a poll without subscription) the recorded
 * answer says so.
 */
import assert from 'node:assert/strict';
import { BridgeClient, type BridgeAnswer } from './helpers/bridge-client.js';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { startTestBridge } from './helpers/bridge.js';
import { waitFor } from './helpers/wait.js';

/** `{{topic}}`, `{{group}}` and `{{base}}` are filled in per run. */
interface Step {
  readonly what: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  readonly status: number;
  /** The documented answer; compared by shape (same keys, same JSON types), strings in `exact` by value. */
  readonly answer?: unknown;
  readonly exact?: readonly string[];
  /** Repeat (poll) until the answer is a non-empty array. */
  readonly untilRecords?: boolean;
}

const V2 = { 'content-type': 'application/vnd.kafka.v2+json' };

/** Recorded from the Strimzi bridge documentation's examples (0.2x API reference and quickstart). */
const RECORDED: readonly Step[] = [
  {
    what: 'create a consumer (API reference example body)',
    method: 'POST',
    path: '/consumers/{{group}}',
    headers: V2,
    body: {
      name: 'consumer1',
      format: 'json',
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
      'fetch.min.bytes': 512,
      'consumer.request.timeout.ms': 30000,
      'isolation.level': 'read_committed',
    },
    status: 200,
    answer: {
      instance_id: 'consumer1',
      base_uri: 'http://localhost:8080/consumers/my-group/instances/consumer1',
    },
    exact: ['instance_id'],
  },
  {
    what: 'the same name again',
    method: 'POST',
    path: '/consumers/{{group}}',
    headers: V2,
    body: { name: 'consumer1', format: 'json' },
    status: 409,
    answer: {
      error_code: 409,
      message: 'A consumer instance with the specified name already exists in the Kafka Bridge.',
    },
  },
  {
    what: 'invalid configuration values',
    method: 'POST',
    path: '/consumers/{{group}}',
    headers: V2,
    body: { name: 'consumer2', 'auto.offset.reset': 'yesterday' },
    status: 422,
    answer: { error_code: 422, message: 'One or more consumer configuration options have invalid values.' },
  },
  {
    what: 'poll before subscribing (Strimzi: 500; here 409)',
    method: 'GET',
    path: '{{base}}/records',
    headers: { accept: 'application/vnd.kafka.json.v2+json' },
    status: 409,
    answer: { error_code: 409, message: 'not subscribed' },
  },
  {
    what: 'subscribe to topics',
    method: 'POST',
    path: '{{base}}/subscription',
    headers: V2,
    body: { topics: ['{{topic}}'] },
    status: 204,
  },
  {
    what: 'topics and topic_pattern together',
    method: 'POST',
    path: '{{base}}/subscription',
    headers: V2,
    body: { topics: ['{{topic}}'], topic_pattern: 'topic-\\d+' },
    status: 409,
    answer: {
      error_code: 409,
      message: 'Subscriptions to topics, partitions, and patterns are mutually exclusive.',
    },
  },
  {
    what: 'produce records (quickstart)',
    method: 'POST',
    path: '/topics/{{topic}}',
    headers: { 'content-type': 'application/vnd.kafka.json.v2+json' },
    body: {
      records: [
        { key: 'user-alice', value: 'alice@example.com' },
        { value: 'bob@example.com' },
        { key: 'key1', value: { foo: 'bar' } },
      ],
    },
    status: 200,
    answer: {
      offsets: [
        { partition: 0, offset: 0 },
        { partition: 0, offset: 1 },
        { partition: 0, offset: 2 },
      ],
    },
  },
  {
    what: 'poll with the wrong embedded format',
    method: 'GET',
    path: '{{base}}/records',
    headers: { accept: 'application/vnd.kafka.binary.v2+json' },
    status: 406,
    answer: {
      error_code: 406,
      message:
        'The `format` used in the consumer creation request does not match the embedded format in the Accept header of this request.',
    },
  },
  {
    what: 'poll (API reference example answer)',
    method: 'GET',
    path: '{{base}}/records?timeout=1000&max_bytes=100000',
    headers: { accept: 'application/vnd.kafka.json.v2+json' },
    status: 200,
    untilRecords: true,
    answer: [
      { topic: 'topic', key: 'key1', value: 'alice@example.com', partition: 0, offset: 2, timestamp: 1 },
    ],
  },
  {
    what: 'list subscriptions',
    method: 'GET',
    path: '{{base}}/subscription',
    status: 200,
    answer: { topics: ['{{topic}}'], partitions: [{ '{{topic}}': [0] }] },
    exact: ['topics'],
  },
  {
    what: 'commit offsets (API reference example body)',
    method: 'POST',
    path: '{{base}}/offsets',
    headers: V2,
    body: { offsets: [{ topic: '{{topic}}', partition: 0, offset: 2 }] },
    status: 204,
  },
  {
    what: 'commit everything polled (empty body)',
    method: 'POST',
    path: '{{base}}/offsets',
    status: 204,
  },
  {
    what: 'seek to an offset',
    method: 'POST',
    path: '{{base}}/positions',
    headers: V2,
    body: { offsets: [{ topic: '{{topic}}', partition: 0, offset: 1 }] },
    status: 204,
  },
  {
    what: 'seek to the beginning',
    method: 'POST',
    path: '{{base}}/positions/beginning',
    headers: V2,
    body: { partitions: [{ topic: '{{topic}}', partition: 0 }] },
    status: 204,
  },
  {
    what: 'seek to the end',
    method: 'POST',
    path: '{{base}}/positions/end',
    headers: V2,
    body: { partitions: [{ topic: '{{topic}}', partition: 0 }] },
    status: 204,
  },
  {
    what: 'unsubscribe',
    method: 'DELETE',
    path: '{{base}}/subscription',
    status: 204,
  },
  {
    what: 'delete the consumer',
    method: 'DELETE',
    path: '{{base}}',
    status: 204,
  },
  {
    what: 'a deleted consumer is not found',
    method: 'POST',
    path: '{{base}}/subscription',
    headers: V2,
    body: { topics: ['{{topic}}'] },
    status: 404,
    answer: { error_code: 404, message: 'The specified consumer instance was not found.' },
  },
];

function fill(value: unknown, vars: Record<string, string>): unknown {
  if (typeof value === 'string')
    return value.replace(/\{\{(\w+)\}\}/g, (_, name: string) => vars[name] ?? '');
  if (Array.isArray(value)) return value.map((entry) => fill(entry, vars));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, entry]) => [fill(key, vars), fill(entry, vars)]),
    );
  }
  return value;
}

const kind = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

/** Same JSON types and keys as the recorded answer (first array element as the template). */
function assertShape(actual: unknown, recorded: unknown, at: string): void {
  // A recorded string may be any JSON value where the record's key/value are embedded data.
  if (/\/(key|value)$/.test(at)) return;
  assert.equal(kind(actual), kind(recorded), `${at}: ${JSON.stringify(actual)}`);
  if (Array.isArray(recorded) && Array.isArray(actual) && recorded.length > 0) {
    for (const [index, entry] of actual.entries()) assertShape(entry, recorded[0], `${at}/${index}`);
  } else if (kind(recorded) === 'object') {
    const expected = recorded as Record<string, unknown>;
    const got = actual as Record<string, unknown>;
    for (const key of Object.keys(expected)) {
      assert.ok(key in got, `${at}: missing "${key}" in ${JSON.stringify(actual)}`);
      assertShape(got[key], expected[key], `${at}/${key}`);
    }
  }
}

describe('bridge pull consumers: Strimzi compatibility replay', function () {
  this.timeout(90_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  it('answers the documented request sequence with the documented statuses and shapes', async () => {
    const { bridge } = await startTestBridge(cleanup);
    const client = new BridgeClient(bridge.url);
    const topic = await suite.kafka.createTopic(uniqueName('compat'), 1);
    const group = uniqueName('compat-group');
    const vars = { topic, group, base: `/consumers/${group}/instances/consumer1` };

    for (const step of RECORDED) {
      const send = () =>
        client.call(fill(step.path, vars) as string, {
          method: step.method,
          ...(step.headers ? { headers: step.headers } : {}),
          ...(step.body === undefined ? {} : { body: fill(step.body, vars) }),
        });
      let answer: BridgeAnswer<unknown>;
      if (step.untilRecords) {
        answer = await waitFor(
          async () => {
            const polled = await send();
            return Array.isArray(polled.body) && polled.body.length > 0 ? polled : undefined;
          },
          { what: step.what },
        );
      } else {
        answer = await send();
      }
      assert.equal(answer.status, step.status, `${step.what}: ${JSON.stringify(answer.body)}`);
      if (step.answer === undefined) {
        assert.equal(answer.body, undefined, `${step.what}: no body expected`);
        continue;
      }
      const recorded = fill(step.answer, vars);
      assertShape(answer.body, recorded, step.what);
      const type = String(answer.headers['content-type']);
      if (step.status >= 400) {
        assert.match(type, /^application\/vnd\.kafka\.v2\+json/, step.what);
        const code = (answer.body as { error_code: number }).error_code;
        assert.equal(
          Math.floor(code / 100),
          step.status,
          `${step.what}: error_code ${code} names the status`,
        );
      }
      for (const key of step.exact ?? []) {
        assert.deepEqual(
          (answer.body as Record<string, unknown>)[key],
          (recorded as Record<string, unknown>)[key],
          `${step.what}: ${key}`,
        );
      }
    }
  });
});

/**
 * Stream processors under SIGKILL, with real sidecar processes: a run of records during which the
 * sidecar is killed twice and restarted. With `exactly_once` a read_committed reader sees every
 * expected output exactly once (the killed process's open transactions are aborted by the
 * restarted one's fencing, and what was committed is never processed into outputs again); with
 * `at_least_once` outputs may repeat but none is missing. Both print their counts.
 *
 * PROCESSOR_KILL_RECORDS changes the count (default 5,000). Most of the time is the 6 s session
 * timeout a killed member holds its partitions for, twice per run.
 */
import assert from 'node:assert/strict';
import { kafkaSuite, uniqueName } from './helpers/kafka.js';
import { allCommitted, readToEnd, startProcessorApp, type ProcessorApp } from './helpers/processor.js';
import { startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait.js';

const RECORDS = Number(process.env['PROCESSOR_KILL_RECORDS'] ?? 5_000);

describe('stream processors under SIGKILL (sidecar processes)', function () {
  this.timeout(90_000);
  const suite = kafkaSuite();
  const { cleanup } = suite;

  async function startMember(config: unknown): Promise<SidecarProcess> {
    const member = await startSidecarProcess(config, { startTimeoutMs: 30_000 });
    cleanup.defer(() => member.cleanup());
    return member;
  }

  async function produceNumbered(topic: string, count: number, chunk = 500): Promise<void> {
    const producer = suite.kafka.producer();
    await producer.connect();
    for (let start = 0; start < count; start += chunk) {
      const messages = [];
      for (let n = start; n < Math.min(count, start + chunk); n++) {
        messages.push({ key: `key-${n % 37}`, value: JSON.stringify({ n }) });
      }
      await producer.send({ topic, messages, acks: -1 });
    }
  }

  /** Inputs the app has seen (at least once), by the `n` in their data. */
  const seenCount = (app: ProcessorApp) => app.seen.size;

  async function killAndRestart(
    guarantee: 'exactly_once' | 'at_least_once',
  ): Promise<{ counts: Map<number, number>; app: ProcessorApp; uncommitted: number; outputs: number }> {
    const input = await suite.kafka.createTopic(uniqueName('proc-kill-in'), 3);
    const output = await suite.kafka.createTopic(uniqueName('proc-kill-out'), 3);
    const group = uniqueName('proc-kill-group');
    const app = await startProcessorApp(({ events }) => ({
      status: 200,
      body: {
        records: events.map((event) => ({
          topic: output,
          key: event.partitionkey,
          value: { n: (event.data as { n: number }).n, from: event.id },
        })),
      },
    }));
    cleanup.defer(() => app.close());
    const config = {
      admin: { port: 0, host: '127.0.0.1' },
      ingress: { port: 0, host: '127.0.0.1', target: app.url },
      egress: { enabled: false },
      kafka: { bootstrap: suite.kafka.brokers },
      shutdown: { drainDelayMs: 0, timeoutMs: 10_000 },
      log: { level: 'info' },
      processors: [
        {
          name: 'kill',
          topics: [input],
          group,
          outputTopics: [output],
          guarantee,
          autoOffsetReset: 'earliest',
          commitRecords: 300,
          sessionTimeoutMs: 6_000,
        },
      ],
    };
    await produceNumbered(input, RECORDS);
    // Outputs as written, committed or not: each kill waits until outputs are written whose inputs
    // are not committed yet, so the kill really leaves an open transaction (exactly_once) or
    // outputs that will be written again (at_least_once).
    let written = 0;
    const watcher = suite.kafka.consumer({ groupId: uniqueName('proc-kill-watch'), readUncommitted: true });
    await watcher.connect();
    await watcher.subscribe({ topic: output, fromBeginning: true });
    await watcher.run({
      eachBatch: ({ batch }) => {
        written += batch.messages.length;
        return Promise.resolve();
      },
    });
    const admin = await suite.kafka.admin();
    const committedInputs = async () => {
      const [entry] = await admin.fetchOffsets({ groupId: group, topics: [input] });
      return entry.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    };
    let member = await startMember(config);
    for (const fraction of [0.2, 0.55]) {
      await waitFor(
        async () => seenCount(app) >= RECORDS * fraction && written - (await committedInputs()) >= 50,
        { timeoutMs: 40_000, what: `${fraction * 100}% of the inputs at the app, outputs uncommitted` },
      );
      member.proc.kill('SIGKILL');
      assert.equal(await member.exited, 'SIGKILL');
      member = await startMember(config);
    }
    await waitFor(() => allCommitted(suite.kafka.kafka, group, input), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: `all ${RECORDS} inputs committed (app saw ${seenCount(app)})`,
    });
    const committed = await readToEnd(suite.kafka.kafka, output);
    const everything = await readToEnd(suite.kafka.kafka, output, { readUncommitted: true });
    const counts = new Map<number, number>();
    for (const record of committed) {
      const { n } = JSON.parse(record.value?.toString('utf8') ?? '{}') as { n: number };
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    return { counts, app, uncommitted: everything.length, outputs: committed.length };
  }

  function summary(counts: Map<number, number>) {
    let missing = 0;
    let duplicates = 0;
    for (let n = 0; n < RECORDS; n++) {
      const count = counts.get(n) ?? 0;
      if (count === 0) missing += 1;
      else duplicates += count - 1;
    }
    return { missing, duplicates };
  }

  it(`exactly_once: ${RECORDS} records, SIGKILL twice, every output exactly once for read_committed`, async () => {
    const { counts, app, uncommitted, outputs } = await killAndRestart('exactly_once');
    const { missing, duplicates } = summary(counts);
    const requests = [...app.seen.values()].reduce((sum, c) => sum + c, 0);
    console.log(
      `      exactly_once: ${RECORDS} inputs, ${requests} app requests (${requests - app.seen.size} reprocessed), ` +
        `read_committed: ${outputs} outputs, ${counts.size} distinct, ${duplicates} duplicates, ${missing} missing; ` +
        `read_uncommitted: ${uncommitted} (aborted writes included)`,
    );
    assert.equal(missing, 0);
    assert.equal(duplicates, 0);
    assert.equal(outputs, RECORDS);
    // The kills left written but uncommitted outputs behind (the run did test the fencing): a
    // read_uncommitted reader sees them, a read_committed one never does.
    assert.ok(uncommitted > RECORDS, `aborted outputs in the log (read_uncommitted saw ${uncommitted})`);
  });

  it(`at_least_once: ${RECORDS} records, SIGKILL twice, duplicates only, never a loss`, async () => {
    const { counts, app, outputs } = await killAndRestart('at_least_once');
    const { missing, duplicates } = summary(counts);
    const requests = [...app.seen.values()].reduce((sum, c) => sum + c, 0);
    console.log(
      `      at_least_once: ${RECORDS} inputs, ${requests} app requests (${requests - app.seen.size} reprocessed), ` +
        `${outputs} outputs, ${counts.size} distinct, ${duplicates} duplicates, ${missing} missing`,
    );
    assert.equal(missing, 0);
    assert.equal(outputs, RECORDS + duplicates);
    // The kills came after outputs whose inputs were not committed: those are written again.
    assert.ok(duplicates > 0, 'at_least_once repeats outputs after a kill');
  });
});

/**
 * `mesh-sidecar convert-lightmesh-config DIR` on the sample light-mesh config set in
 * integration/fixtures/lightmesh: the printed config passes `check-config` and carries the
 * light-mesh settings over; every setting without an equivalent is a warning.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { checkConfig } from '../services/sidecar/check-config.js';
import { runCli } from './helpers/sidecar-process.js';
import { convertLightmeshConfig, runConvertLightmesh } from '../services/sidecar/convert-lightmesh.js';

const FIXTURES = new URL('./fixtures/lightmesh/', import.meta.url).pathname;

interface Converted {
  kafka: { bootstrap: string[] };
  ingress: { target: string };
  bridge: {
    enabled: boolean;
    lightmesh: { injectCallerId: boolean; serviceId: string; audit: Record<string, unknown> };
  };
  subscriptions: {
    mode: string;
    group: string;
    topics: string[];
    path: string;
    autoOffsetReset: string;
    lightmesh: Record<string, unknown>;
  }[];
}

describe('convert-lightmesh-config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lightmesh-convert-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('turns the sample light-mesh config set into a config that passes check-config', async () => {
    let text = '';
    const errors: string[] = [];
    const code = runConvertLightmesh(
      FIXTURES,
      (t) => (text += t),
      (line) => errors.push(line),
    );
    assert.equal(code, 0);
    const file = join(dir, 'mesh.yaml');
    writeFileSync(file, text);
    const lines: string[] = [];
    assert.equal(await checkConfig(file, {}, (line) => lines.push(line)), 0, lines.join('\n'));
    assert.deepEqual(lines, ['ok']);

    const config = parse(text) as Converted;
    // values.yml overrides the placeholders' defaults.
    assert.deepEqual(config.kafka.bootstrap, ['kafka-0.kafka:9092', 'kafka-1.kafka:9092']);
    assert.equal(config.ingress.target, 'http://localhost:8080');
    assert.equal(config.bridge.enabled, true);
    assert.equal(config.bridge.lightmesh.injectCallerId, true);
    assert.equal(config.bridge.lightmesh.serviceId, 'com.example.orders-1.0.0');
    assert.deepEqual(config.bridge.lightmesh.audit, {
      enabled: true,
      target: 'topic',
      topic: 'sidecar-audit',
    });
    const [subscription] = config.subscriptions;
    assert.equal(subscription.mode, 'lightmesh');
    assert.equal(subscription.group, 'orders-reactive');
    assert.deepEqual(subscription.topics, ['orders', 'payments']);
    assert.equal(subscription.path, '/kafka/records');
    assert.equal(subscription.autoOffsetReset, 'earliest');
    assert.equal(subscription.lightmesh.keyFormat, 'string');
    assert.equal(subscription.lightmesh.valueFormat, 'json');
    assert.equal(subscription.lightmesh.deadLetterTopicExt, '.dlq');
    assert.equal(subscription.lightmesh.batchRollbackThreshold, 30);

    // One warning per unmapped setting, naming file and key.
    for (const expected of [
      'kafka-producer.yml: properties.schema.registry.url',
      'kafka-producer.yml: properties.linger.ms',
      'kafka-producer.yml: topic',
      'kafka-consumer.yml: properties.fetch.max.bytes',
      'kafka-consumer.yml: useNoWrappingAvro',
      'kafka-consumer.yml: serverId',
    ]) {
      assert.ok(
        errors.some((line) => line.startsWith(`warning: ${expected}:`)),
        `${expected} in ${errors.join('\n')}`,
      );
    }
    // Settings mesh-sidecar does anyway are not warned about.
    assert.ok(!errors.some((line) => /serializer|enable\.idempotence|acks|auto\.commit/.test(line)));
  });

  it('warns about registry formats, other clusters and unsupported consumers', () => {
    writeFileSync(
      join(dir, 'kafka-consumer.yml'),
      [
        'properties:',
        '  bootstrap.servers: ${kafka-consumer.bootstrap.servers:other:9092}',
        '  security.protocol: SASL_SSL',
        'topic: t1',
        'valueFormat: avro',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'kafka-producer.yml'),
      'properties:\n  bootstrap.servers: kafka:9092\n  compression.type: gzip\n',
    );
    writeFileSync(
      join(dir, 'values.yml'),
      'service.com.networknt.server.StartupHookProvider:\n  - com.networknt.mesh.kafka.ReactiveConsumerStartupHook\n  - com.networknt.mesh.kafka.KsqldbConsumerStartupHook\n',
    );
    const { config, warnings } = convertLightmeshConfig(dir);
    const joined = warnings.join('\n');
    assert.match(joined, /valueFormat: format "avro" needs a schema registry/);
    assert.match(joined, /properties\.bootstrap\.servers: differs from the producer's/);
    assert.match(joined, /properties\.security\.protocol: set Kafka TLS\/SASL/);
    assert.match(joined, /KsqldbConsumerStartupHook has no mesh-sidecar equivalent/);
    // Only the reactive consumer hook is listed: no bridge.
    assert.equal((config.bridge as { enabled: boolean }).enabled, false);
    assert.equal((config.bridge as { producer: { compression: string } }).producer.compression, 'gzip');
    assert.equal((config.subscriptions as { path: string }[])[0].path, '/kafka/records');
  });

  it('runs as `mesh-sidecar convert-lightmesh-config DIR`, and check-config accepts its output', async function () {
    this.timeout(60_000);
    const converted = await runCli(['convert-lightmesh-config', FIXTURES]);
    assert.equal(converted.code, 0, converted.stderr);
    assert.match(converted.stdout, /mode: lightmesh/);
    assert.match(converted.stderr, /^warning: kafka-producer\.yml: properties\.schema\.registry\.url: /m);
    const file = join(dir, 'converted.yaml');
    writeFileSync(file, converted.stdout);
    const checked = await runCli(['check-config', file]);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.equal(checked.stdout.trim(), 'ok');
    const usage = await runCli(['convert-lightmesh-config']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /convert-lightmesh-config needs exactly one DIR/);
  });

  it('fails on a directory without light-mesh Kafka config', () => {
    const errors: string[] = [];
    assert.equal(
      runConvertLightmesh(
        dir,
        () => undefined,
        (line) => errors.push(line),
      ),
      2,
    );
    assert.match(errors[0], /neither kafka-producer\.yml nor kafka-consumer\.yml/);
  });
});

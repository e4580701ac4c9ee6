import assert from 'node:assert/strict';
import type { Producer } from 'kafkajs';
import type { Logger } from '../../services/runtime/logging.js';
import { AuditWriter, type AuditFields } from './audit.js';

const entry: AuditFields = {
  auditType: 'PRODUCER',
  topic: 't',
  partition: 0,
  offset: 7,
  correlationId: 'c1',
  traceabilityId: null,
  key: 'k',
  auditStatus: 'SUCCESS',
  stacktrace: null,
};

function capture() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) =>
    void lines.push({ level, obj, msg });
  return { lines, logger: { info: at('info'), error: at('error') } as unknown as Logger };
}

describe('light-mesh audit writer', () => {
  it('writes one record per entry to the audit topic, keyed by correlation id', async () => {
    const sent: { topic: string; messages: { key: string; value: string }[] }[] = [];
    const producer = {
      send: (batch: (typeof sent)[number]) => {
        sent.push(batch);
        return Promise.resolve([]);
      },
    } as unknown as Producer;
    const { logger } = capture();
    const writer = new AuditWriter({
      settings: { enabled: true, target: 'topic', topic: 'audit' },
      serviceId: 'svc',
      producer: () => Promise.resolve(producer),
      logger,
    });
    await writer.write([entry, { ...entry, correlationId: 'c2', auditStatus: 'FAILURE', stacktrace: 'x' }]);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].topic, 'audit');
    assert.deepEqual(
      sent[0].messages.map((m) => m.key),
      ['c1', 'c2'],
    );
    const first = JSON.parse(sent[0].messages[0].value) as Record<string, unknown>;
    assert.deepEqual(Object.keys(first).sort(), [
      'auditStatus',
      'auditType',
      'correlationId',
      'id',
      'key',
      'offset',
      'partition',
      'serviceId',
      'stacktrace',
      'timestamp',
      'topic',
      'traceabilityId',
    ]);
    assert.equal(first.serviceId, 'svc');
    assert.equal(typeof first.timestamp, 'number');
    assert.notEqual(first.id, (JSON.parse(sent[0].messages[1].value) as { id: string }).id);
  });

  it('logs instead with target log, does nothing when off, and never throws on a failed write', async () => {
    const log = capture();
    await new AuditWriter({
      settings: { enabled: true, target: 'log', topic: 'audit' },
      serviceId: 'svc',
      producer: () => Promise.reject(new Error('unused')),
      logger: log.logger,
    }).write([entry]);
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0].msg, 'audit');
    assert.equal((log.lines[0].obj.audit as { correlationId: string }).correlationId, 'c1');

    const off = capture();
    await new AuditWriter({
      settings: { enabled: false, target: 'log', topic: 'audit' },
      serviceId: 'svc',
      producer: () => Promise.reject(new Error('unused')),
      logger: off.logger,
    }).write([entry]);
    assert.equal(off.lines.length, 0);

    const failing = capture();
    await new AuditWriter({
      settings: { enabled: true, target: 'topic', topic: 'audit' },
      serviceId: 'svc',
      producer: () => Promise.reject(new Error('broker away')),
      logger: failing.logger,
    }).write([entry]);
    assert.equal(failing.lines[0].level, 'error');
    assert.equal(failing.lines[0].obj.err, 'broker away');
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS, MeshError, type ErrorSpec, type MeshErrorCode } from './errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** Rows of the README's error table: | `MESH_X` | 404 | 40401 | no | title | */
function readmeErrorRows(): Map<
  string,
  { status: number; bridgeCode: number | undefined; canRetry: boolean }
> {
  const rows = new Map<string, { status: number; bridgeCode: number | undefined; canRetry: boolean }>();
  for (const line of readme.split('\n')) {
    const match = /^\| `(MESH_[A-Z_]+)` \| (\d{3}) \| (\d{5}|–) \| (yes|no) \|/.exec(line);
    if (match) {
      rows.set(match[1], {
        status: Number(match[2]),
        bridgeCode: match[3] === '–' ? undefined : Number(match[3]),
        canRetry: match[4] === 'yes',
      });
    }
  }
  return rows;
}

describe('error registry', () => {
  it('matches the README error table both ways', () => {
    const rows = readmeErrorRows();
    assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
    for (const [code, spec] of Object.entries(ERRORS) as [MeshErrorCode, ErrorSpec][]) {
      assert.deepEqual(
        rows.get(code),
        { status: spec.status, bridgeCode: spec.bridgeCode, canRetry: spec.canRetry },
        code,
      );
    }
  });

  it('gives every bridge error_code the first three digits of its status, and no code twice', () => {
    const seen = new Set<number>();
    for (const [code, spec] of Object.entries(ERRORS) as [MeshErrorCode, ErrorSpec][]) {
      if (spec.bridgeCode === undefined) continue;
      assert.equal(Math.floor(spec.bridgeCode / 100), spec.status, code);
      assert.ok(!seen.has(spec.bridgeCode), `${spec.bridgeCode} used twice`);
      seen.add(spec.bridgeCode);
    }
  });

  it('keeps the contract’s bridge codes', () => {
    assert.equal(ERRORS.MESH_TOPIC_NOT_FOUND.bridgeCode, 40401);
    assert.equal(ERRORS.MESH_PARTITION_NOT_FOUND.bridgeCode, 40402);
    assert.equal(ERRORS.MESH_CONSUMER_NOT_FOUND.bridgeCode, 40403);
    assert.equal(ERRORS.MESH_CONSUMER_EXISTS.bridgeCode, 40901);
    assert.equal(ERRORS.MESH_SUBSCRIPTION_CONFLICT.bridgeCode, 40902);
    assert.equal(ERRORS.MESH_INVALID_RECORD.bridgeCode, 42201);
    assert.equal(ERRORS.MESH_SCHEMA_MISMATCH.bridgeCode, 42202);
    assert.equal(ERRORS.MESH_KAFKA_UNAVAILABLE.bridgeCode, 50301);
  });

  it('renders problem+json and the bridge shape with field errors', () => {
    const fieldErrors = [{ in: 'body' as const, path: '/records/0/value', message: 'must be object' }];
    const error = new MeshError('MESH_SCHEMA_MISMATCH', 'record 0 fails the schema of orders', {
      errors: fieldErrors,
    });
    assert.deepEqual(error.toProblem('/topics/orders'), {
      type: 'urn:mesh-sidecar:error:MESH_SCHEMA_MISMATCH',
      title: 'Record fails its topic schema',
      status: 422,
      detail: 'record 0 fails the schema of orders',
      code: 'MESH_SCHEMA_MISMATCH',
      instance: '/topics/orders',
      errors: fieldErrors,
    });
    assert.deepEqual(error.toBridgeError(), {
      error_code: 42202,
      message: 'record 0 fails the schema of orders',
      validation_errors: fieldErrors,
    });
    assert.equal(error.canRetry, false);
    assert.equal(new MeshError('MESH_KAFKA_UNAVAILABLE').canRetry, true);
  });
});

import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { MeshError } from '../../services/runtime/errors.js';
import { takeCallControls } from './call-controls.js';

describe('egress per-call controls', () => {
  it('reads the controls and takes them off the headers, leaving the others', () => {
    const headers: IncomingHttpHeaders = {
      'x-mesh-timeout-ms': ' 800 ',
      'x-mesh-per-try-timeout-ms': '250',
      'x-mesh-max-retries': '0',
      'x-mesh-other': 'kept',
      accept: 'application/json',
    };
    assert.deepEqual(takeCallControls(headers), { timeoutMs: 800, perTryTimeoutMs: 250, maxRetries: 0 });
    assert.deepEqual(headers, { 'x-mesh-other': 'kept', accept: 'application/json' });
  });

  it('is undefined for a call without controls', () => {
    const headers: IncomingHttpHeaders = { accept: '*/*' };
    assert.equal(takeCallControls(headers), undefined);
    assert.deepEqual(headers, { accept: '*/*' });
  });

  it('refuses out-of-range, fractional, signed and repeated values, each by name', () => {
    const bad: [string, string | string[]][] = [
      ['x-mesh-timeout-ms', '0'],
      ['x-mesh-timeout-ms', '2147483648'],
      ['x-mesh-timeout-ms', '1.5'],
      ['x-mesh-per-try-timeout-ms', '-1'],
      ['x-mesh-per-try-timeout-ms', ''],
      ['x-mesh-max-retries', '10'],
      ['x-mesh-max-retries', ['1', '2']],
    ];
    for (const [name, value] of bad) {
      const headers: IncomingHttpHeaders = { [name]: value };
      assert.throws(
        () => takeCallControls(headers),
        (err: unknown) =>
          err instanceof MeshError &&
          err.code === 'MESH_BAD_REQUEST' &&
          err.errors?.length === 1 &&
          err.errors[0].path === `/${name}`,
        `${name}: ${JSON.stringify(value)}`,
      );
      assert.equal(headers[name], undefined, 'taken off even when refused');
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshError } from '../../services/runtime/errors.js';
import { AddressFilter, ApiKeyChecker, BasicAuthChecker } from './access-control.js';
import type { IngressContext } from './context.js';

function ctx(
  options: { address?: string; headers?: Record<string, string>; query?: string } = {},
): IngressContext {
  return {
    req: { headers: options.headers ?? {} },
    clientAddress: options.address ?? '127.0.0.1',
    query: options.query ?? '',
  } as unknown as IngressContext;
}

function status(run: () => void): number {
  try {
    run();
    return 200;
  } catch (err) {
    return (err as MeshError).status;
  }
}

describe('ingress access control', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-access-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('filters client addresses by CIDR, deny before allow, v4-mapped v6 as v4', () => {
    const filter = new AddressFilter(['10.0.0.0/8', '::1'], ['10.1.0.0/16']);
    assert.equal(
      status(() => filter.check(ctx({ address: '10.2.3.4' }))),
      200,
    );
    assert.equal(
      status(() => filter.check(ctx({ address: '::ffff:10.2.3.4' }))),
      200,
    );
    assert.equal(
      status(() => filter.check(ctx({ address: '::1' }))),
      200,
    );
    assert.equal(
      status(() => filter.check(ctx({ address: '10.1.2.3' }))),
      403,
    );
    assert.equal(
      status(() => filter.check(ctx({ address: '192.168.1.1' }))),
      403,
    );
    assert.throws(() => new AddressFilter(['nonsense'], undefined), /not an IP/);
    assert.throws(() => new AddressFilter(['10.0.0.0/33'], undefined), /prefix/);
  });

  it('checks API keys from the header, the query and a file', async () => {
    await writeFile(join(dir, 'keys'), '# comment\n\nfrom-file\n');
    const checker = await ApiKeyChecker.create(
      { header: 'X-Api-Key', query: 'api_key', keys: ['inline'], keysFile: 'keys' },
      (file) => join(dir, file),
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ headers: { 'x-api-key': 'inline' } }))),
      200,
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ headers: { 'x-api-key': 'from-file' } }))),
      200,
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ query: 'a=1&api_key=inline' }))),
      200,
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ headers: { 'x-api-key': 'inlinex' } }))),
      401,
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ headers: { 'x-api-key': '# comment' } }))),
      401,
    );
    assert.equal(
      status(() => checker.authenticate(ctx())),
      401,
    );
    await assert.rejects(
      ApiKeyChecker.create({ header: 'x' }, (f) => f),
      /no API keys/,
    );
  });

  it('checks basic auth users with hashed and plain passwords', async () => {
    const hashed = createHash('sha256').update('s3cret').digest('hex');
    await writeFile(join(dir, 'users'), `alice:sha256:${hashed}\nbob:plain:colon\n`);
    const checker = await BasicAuthChecker.create({ usersFile: 'users', realm: 'r' }, (f) => join(dir, f));
    const basic = (user: string, pw: string) =>
      ctx({ headers: { authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` } });
    assert.equal(
      status(() => checker.authenticate(basic('alice', 's3cret'))),
      200,
    );
    assert.equal(
      status(() => checker.authenticate(basic('bob', 'plain:colon'))),
      200,
    );
    assert.equal(
      status(() => checker.authenticate(basic('alice', 'plain:colon'))),
      401,
    );
    assert.equal(
      status(() => checker.authenticate(basic('carol', 's3cret'))),
      401,
    );
    assert.equal(
      status(() => checker.authenticate(ctx({ headers: { authorization: 'Bearer x' } }))),
      401,
    );
    try {
      checker.authenticate(ctx());
    } catch (err) {
      assert.match(String((err as MeshError).headers['www-authenticate']), /^Basic realm="r"/);
    }
  });
});

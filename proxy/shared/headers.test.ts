import assert from 'node:assert/strict';
import { addForwardingHeaders, withoutHopByHop } from './headers.js';

describe('proxy headers', () => {
  it('drops hop-by-hop headers and the ones Connection names', () => {
    const out = withoutHopByHop({
      connection: 'keep-alive, X-Secret-Hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'x-secret-hop': '1',
      upgrade: 'h2c',
      'content-type': 'text/plain',
      'x-kept': ['a', 'b'],
    });
    assert.deepEqual(out, { 'content-type': 'text/plain', 'x-kept': ['a', 'b'] });
  });

  it('appends this hop to X-Forwarded-For and Forwarded', () => {
    const headers: Record<string, string> = { 'x-forwarded-for': '10.0.0.1', forwarded: 'for=10.0.0.1' };
    addForwardingHeaders(headers, {
      clientAddress: '::ffff:127.0.0.1',
      protocol: 'http',
      host: 'orders:8080',
    });
    assert.equal(headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], 'orders:8080');
    assert.equal(headers.forwarded, 'for=10.0.0.1, for=127.0.0.1;host="orders:8080";proto=http');
  });

  it('quotes IPv6 clients in Forwarded', () => {
    const headers: Record<string, string> = {};
    addForwardingHeaders(headers, { clientAddress: '::1', protocol: 'https', host: undefined });
    assert.equal(headers.forwarded, 'for="[::1]";proto=https');
  });
});

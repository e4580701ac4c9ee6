import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { Base64Decoder, grpcRequestBody, grpcWebMode, toGrpcRequest, trailerFrame } from './grpc-web.js';

describe('gRPC-Web', () => {
  it('tells the binary and the text variants, and nothing else, apart', () => {
    assert.deepEqual(
      [
        'application/grpc-web',
        'application/grpc-web+proto',
        'application/grpc-web-text',
        'application/grpc-web-text+proto; charset=utf-8',
        'application/grpc+proto',
        'application/json',
        undefined,
      ].map(grpcWebMode),
      ['binary', 'binary', 'text', 'text', undefined, undefined, undefined],
    );
  });

  it('gives the app a gRPC content type, and no length for a body that base64 decoding shrinks', () => {
    const binary = { 'content-type': 'application/grpc-web+proto', 'content-length': '12' };
    toGrpcRequest(binary, 'binary');
    assert.deepEqual(binary, { 'content-type': 'application/grpc+proto', 'content-length': '12' });
    const text = { 'content-type': 'application/grpc-web-text; charset=utf-8', 'content-length': '16' };
    toGrpcRequest(text, 'text');
    assert.deepEqual(text, { 'content-type': 'application/grpc' });
  });

  it('decodes a base64 body whatever its chunks split, whitespace and padding included', async () => {
    const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37) % 256));
    const encoded = bytes.toString('base64');
    const chunks = [
      encoded.slice(0, 1),
      encoded.slice(1, 6) + '\r\n',
      encoded.slice(6, 61),
      encoded.slice(61),
    ];
    const decoded: Buffer[] = [];
    const decoder = Readable.from(chunks.map((chunk) => Buffer.from(chunk))).pipe(new Base64Decoder());
    for await (const chunk of decoder) decoded.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(decoded), bytes);
    assert.deepEqual(grpcRequestBody(Buffer.from(encoded), 'text'), bytes);
    assert.equal(grpcRequestBody(bytes, 'binary'), bytes);
  });

  it('makes the trailer frame: flag 0x80, length, header lines (a repeated trailer on lines of its own)', () => {
    const frame = trailerFrame({ 'grpc-status': '0', 'x-tag': ['a', 'b'], gone: undefined });
    const block = 'grpc-status:0\r\nx-tag:a\r\nx-tag:b\r\n';
    assert.equal(frame[0], 0x80);
    assert.equal(frame.readUInt32BE(1), block.length);
    assert.equal(frame.subarray(5).toString(), block);
  });
});

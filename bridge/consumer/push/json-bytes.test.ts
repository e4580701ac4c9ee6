import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isJsonBytes } from './json-bytes.js';

const parses = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('isJsonBytes', () => {
  it('agrees with JSON.parse on edge cases', () => {
    const cases = [
      '0',
      '-0',
      '1.5e+3',
      '1E5',
      '-1.25e-10',
      '01',
      '1.',
      '.5',
      '-',
      '+1',
      '1e',
      '1e+',
      '0x10',
      'NaN',
      'true',
      'false',
      'null',
      'tru',
      'nulll',
      'True',
      '""',
      '"a"',
      '"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t"',
      '"\\u12"',
      '"\\x41"',
      '"\\\'"',
      '"tab\there"',
      '"unterminated',
      '"é ✓ 😀"',
      '[]',
      '{}',
      '[ ]',
      '{ }',
      '[1,]',
      '[,1]',
      '[1 2]',
      '{"a":1,}',
      '{"a" 1}',
      '{a:1}',
      "{'a':1}",
      '{"a":1 "b":2}',
      '{"a":{"b":[1,{"c":null}]}}',
      '[[[[[]]]]]',
      '[[[[[]]]]',
      '[]]',
      '{}}',
      ' \t\n\r 1 \r\n',
      '1 2',
      '',
      ' ',
      '\u00a01',
      '1\u00a0',
      '[1]x',
      '{"a":1}{"b":2}',
      '"\\ud800"',
      '[-]',
      '[1e5,-0.0,2E-3]',
      '{"":""}',
      '{"a":[}',
      '["a":1]',
      '{"a",1}',
    ];
    for (const text of cases) {
      assert.equal(isJsonBytes(Buffer.from(text)), parses(text), JSON.stringify(text));
    }
  });

  it('agrees with JSON.parse on generated texts', () => {
    // Valid JSON, JSON with one character changed, removed or inserted, and text made of JSON's
    // own characters: every branch of the checker meets both answers.
    const tokens = fc.constantFrom(
      ...'{}[],:"\\ -+.eE0129tfnrulasx\u00e9\t\n'.split(''),
      'true',
      'null',
      '\\u00',
    );
    const mutated = fc
      .tuple(fc.json(), fc.nat(), fc.constantFrom('delete', 'replace', 'insert'), tokens)
      .map(([text, at, how, token]) => {
        const i = text.length === 0 ? 0 : at % text.length;
        if (how === 'delete') return text.slice(0, i) + text.slice(i + 1);
        if (how === 'replace') return text.slice(0, i) + token + text.slice(i + 1);
        return text.slice(0, i) + token + text.slice(i);
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json(),
          mutated,
          fc.array(tokens, { maxLength: 12 }).map((t) => t.join('')),
        ),
        (text) => {
          assert.equal(isJsonBytes(Buffer.from(text)), parses(text));
        },
      ),
      { numRuns: 5_000 },
    );
  });
});

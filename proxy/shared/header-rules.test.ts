import assert from 'node:assert/strict';
import { compileHeaderEdits, compileHeaderRules, type HeaderBag } from './header-rules.js';

describe('header rules', () => {
  it('removes, then sets, then adds', () => {
    const edit = compileHeaderEdits({
      remove: ['X-Powered-By', 'x-set'],
      set: { 'Cache-Control': 'no-store', 'x-set': 'new' },
      add: { Vary: 'Origin', 'x-new': 'a' },
    })!;
    const headers: HeaderBag = {
      'x-powered-by': 'express',
      'cache-control': 'max-age=60',
      'x-set': 'old',
      vary: 'Accept',
    };
    edit(headers);
    assert.deepEqual(headers, {
      'cache-control': 'no-store',
      'x-set': 'new',
      vary: ['Accept', 'Origin'],
      'x-new': 'a',
    });
  });

  it('compiles empty rules to nothing', () => {
    assert.equal(compileHeaderEdits(undefined), undefined);
    assert.equal(compileHeaderEdits({ set: {}, add: {}, remove: [] }), undefined);
    assert.equal(compileHeaderRules({ request: { set: {}, add: {}, remove: [] } }), undefined);
    assert.equal(compileHeaderRules({ host: 'a.example' })?.host, 'a.example');
  });
});

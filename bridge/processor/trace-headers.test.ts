import assert from 'node:assert/strict';
import { traceIdOf, withTraceContext } from './trace-headers.js';
import { transactionalId } from './transactional.js';

const ours = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const sameTrace = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01';
const foreign = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('processor output trace context', () => {
  it('writes the processing span context into every output', () => {
    const [a, b] = withTraceContext(
      [
        { topic: 'out', message: { value: 'a' } },
        {
          topic: 'out',
          message: { value: 'b', headers: { traceparent: foreign, tracestate: 'x=1', h: 'v' } },
        },
      ],
      { traceparent: ours },
    );
    assert.equal(a.message.headers?.['traceparent'], ours);
    assert.equal(b.message.headers?.['traceparent'], ours);
    assert.equal(b.message.headers?.['tracestate'], undefined);
    assert.equal(b.message.headers?.['h'], 'v');
  });

  it("keeps the app's own span of the same trace", () => {
    const [out] = withTraceContext(
      [{ topic: 'out', message: { value: 'a', headers: { traceparent: sameTrace } } }],
      {
        traceparent: ours,
        tracestate: 'k=v',
      },
    );
    assert.equal(out.message.headers?.['traceparent'], sameTrace);
  });

  it('changes nothing without a trace context', () => {
    const records = [{ topic: 'out', message: { value: 'a' } }];
    assert.deepEqual(withTraceContext(records, {}), records);
    assert.equal(traceIdOf('garbage'), undefined);
    assert.equal(traceIdOf(ours), '0af7651916cd43dd8448eb211c80319c');
  });

  it('names transactional producers by input partition', () => {
    assert.equal(transactionalId('app', 'enrich', 'orders', 3), 'app-enrich-orders-3');
  });
});

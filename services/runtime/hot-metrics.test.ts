import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

describe('hot metrics', () => {
  const labelNames = ['listener', 'route', 'status'] as const;
  const buckets = [0.001, 0.01, 0.1, 1];
  const observations: [Record<(typeof labelNames)[number], string>, number][] = [
    [{ listener: 'ingress', route: '/a', status: '200' }, 0.0005],
    [{ listener: 'ingress', route: '/a', status: '200' }, 0.001],
    [{ listener: 'ingress', route: '/a', status: '200' }, 0.05],
    [{ listener: 'ingress', route: '/b', status: '503' }, 3],
    [{ listener: 'egress', route: '/a', status: '200' }, 0.2],
  ];

  it('expose exactly what prom-client Counter and Histogram expose for the same observations', async () => {
    const reference = new Registry();
    const counter = new Counter({ name: 'x_requests_total', help: 'h', labelNames, registers: [reference] });
    const histogram = new Histogram({
      name: 'x_seconds',
      help: 'h',
      labelNames,
      buckets,
      registers: [reference],
    });
    const hot = new Registry();
    const hotCounter = new HotCounter({ name: 'x_requests_total', help: 'h', labelNames, registers: [hot] });
    const hotHistogram = new HotHistogram({
      name: 'x_seconds',
      help: 'h',
      labelNames,
      buckets,
      registers: [hot],
    });
    for (const [labels, value] of observations) {
      counter.labels(labels).inc();
      histogram.labels(labels).observe(value);
      hotCounter.series(labels).inc();
      hotHistogram.series(labels).observe(value);
    }
    assert.equal(await hot.metrics(), await reference.metrics());
    assert.match(
      await hot.metrics(),
      /x_seconds_bucket\{le="0.1",listener="ingress",route="\/a",status="200"\} 3/,
    );
  });

  it('hand out one series per label set, and start over on reset', async () => {
    const registry = new Registry();
    const hotCounter = new HotCounter({ name: 'y_total', help: 'h', labelNames, registers: [registry] });
    const labels = { listener: 'ingress', route: '/a', status: '200' };
    assert.equal(hotCounter.series(labels), hotCounter.series({ ...labels }));
    assert.notEqual(hotCounter.series(labels), hotCounter.series({ ...labels, status: '500' }));
    hotCounter.series(labels).inc();
    assert.match(await registry.metrics(), /^y_total\{listener="ingress",route="\/a",status="200"\} 1$/m);
    registry.resetMetrics();
    assert.doesNotMatch(await registry.metrics(), /status="200"/);
  });
});

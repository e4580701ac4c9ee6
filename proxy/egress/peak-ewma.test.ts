import assert from 'node:assert/strict';
import { DECAY_MS, DEFAULT_LATENCY_MS, PeakEwma } from './peak-ewma.js';

describe('PeakEwma', () => {
  it('starts at the default, jumps to a higher sample at once and moves down slowly', () => {
    let now = 0;
    const ewma = new PeakEwma(() => now);
    assert.equal(ewma.current(), DEFAULT_LATENCY_MS);
    ewma.observe(200);
    assert.equal(ewma.current(), 200, 'a peak replaces the estimate');
    now += 100;
    ewma.observe(10);
    // 100 ms after the last update a lower sample weighs 1 − e^(−100/10000) ≈ 1 %.
    const weight = Math.exp(-100 / DECAY_MS);
    assert.ok(Math.abs(ewma.current() - (200 * weight + 10 * (1 - weight))) < 1e-9);
    assert.ok(ewma.current() > 190);
  });

  it('decays towards 0 while nothing is measured, so a slow endpoint is tried again', () => {
    let now = 0;
    const ewma = new PeakEwma(() => now);
    ewma.observe(300);
    now += DECAY_MS;
    assert.ok(Math.abs(ewma.current() - 300 / Math.E) < 1e-9);
    now += 4 * DECAY_MS;
    assert.ok(ewma.current() < DEFAULT_LATENCY_MS / 10);
  });
});

/**
 * LatencyHistogram (lib/compute/histogram.ts): the percentiles of worker command statistics,
 * recorded into fixed buckets: within 3% of the exact value over the whole range, 0 when empty.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LatencyHistogram } from '../../lib/compute/histogram.js';

function exact(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil((sorted.length * q) / 100) - 1)]!;
}

describe('LatencyHistogram', () => {
  it('gives 0 when nothing was recorded', () => {
    const h = new LatencyHistogram();
    assert.equal(h.count, 0);
    assert.equal(h.percentile(50), 0);
  });

  it('p50 and p99 stay within 3% of the exact values, from microseconds to minutes', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const scale of [0.05, 1, 40, 3_000, 200_000]) {
      const h = new LatencyHistogram();
      const values: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const ms = scale * (0.5 + random() * random() * 4);
        values.push(ms);
        h.record(ms);
      }
      values.sort((a, b) => a - b);
      assert.equal(h.count, 2000);
      for (const q of [50, 99]) {
        const want = exact(values, q);
        const got = h.percentile(q);
        assert.ok(Math.abs(got - want) <= want * 0.03 + 0.001, `scale ${scale} ms, p${q}: ${got} vs ${want}`);
      }
    }
  });

  it('small values are exact to the microsecond; negative ones count as 0; huge ones are capped', () => {
    const h = new LatencyHistogram();
    h.record(0.007);
    assert.equal(h.percentile(100), 0.007);
    h.record(-5);
    assert.equal(h.percentile(1), 0);
    h.record(1e12);
    assert.ok(h.percentile(100) >= 2_000_000 && h.percentile(100) <= 2 ** 31 / 1000, `capped: ${h.percentile(100)}`);
  });
});

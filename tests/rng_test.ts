// Rng.normal (ziggurat) against the standard normal distribution: moments, the
// Kolmogorov–Smirnov distance to its CDF, and the share of draws in the tail (the base layer's
// separate path). Fixed seeds: the statistics are deterministic; bounds are ≈ 5 standard errors.
import { ok } from "node:assert/strict";
import { Rng } from "../lib/util/rng.ts";

/** Standard normal CDF (erfc by Numerical Recipes' Chebyshev fit, |error| < 1.2e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2, t = 1 / (1 + 0.5 * z);
  const poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                                t * (-0.82215223 + t * 0.17087277))))))));
  const erfc = t * Math.exp(poly);
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

const N = 1_000_000;

for (const seed of [1, 0xdeadbeef]) {
  Deno.test(`rng: normal() follows the standard normal (seed ${seed})`, () => {
    const rng = new Rng(seed);
    const xs = new Float64Array(N);
    for (let i = 0; i < N; i++) xs[i] = rng.normal();
    let m1 = 0, m2 = 0, m3 = 0, m4 = 0, tail = 0;
    for (const x of xs) {
      m1 += x;
      m2 += x * x;
      m3 += x ** 3;
      m4 += x ** 4;
      if (Math.abs(x) > 3.442619855899) tail++;
    }
    const mean = m1 / N, variance = m2 / N - mean * mean;
    const skew = m3 / N, excessKurtosis = m4 / N - 3;
    ok(Math.abs(mean) < 5 / Math.sqrt(N), `mean ${mean}`);
    ok(Math.abs(variance - 1) < 5 * Math.sqrt(2 / N), `variance ${variance}`);
    ok(Math.abs(skew) < 5 * Math.sqrt(15 / N), `skewness ${skew}`);
    ok(Math.abs(excessKurtosis) < 5 * Math.sqrt(96 / N), `excess kurtosis ${excessKurtosis}`);
    // P(|x| > R) = 2(1 − Φ(R)) = 5.76e-4: ≈ 576 ± 24 draws
    const expected = 2 * (1 - normalCdf(3.442619855899)) * N;
    ok(Math.abs(tail - expected) < 5 * Math.sqrt(expected), `${tail} tail draws, ${expected}`);
    xs.sort();
    let ks = 0;
    xs.forEach((x, i) => {
      const f = normalCdf(x);
      ks = Math.max(ks, Math.abs(f - i / N), Math.abs((i + 1) / N - f));
    });
    // Kolmogorov: P(√N·D > 1.95) ≈ 0.001
    ok(ks * Math.sqrt(N) < 1.95, `Kolmogorov–Smirnov √N·D = ${ks * Math.sqrt(N)}`);
  });
}

Deno.test("rng: normal() is reproducible and resumes from the state", () => {
  const a = new Rng(7), b = new Rng(7);
  const xs = Array.from({ length: 1000 }, () => a.normal());
  ok(xs.every((x, i) => x === b.normal() && Number.isFinite(xs[i])));
  const resumed = new Rng(a.state);
  ok(Array.from({ length: 100 }, () => a.normal()).every((x) => x === resumed.normal()));
});

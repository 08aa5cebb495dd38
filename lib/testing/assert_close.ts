/**
 * `assertClose`: compares a computed array with a float64 reference and reports relative
 * RMS and max errors. NaN anywhere fails (an unwritten NaN-filled element shows up here).
 * @module
 */

/** Error statistics of `actual` against `expected`. */
export interface CloseStats {
  /** ‖actual − expected‖₂ / ‖expected‖₂. */
  relRms: number;
  /** max |actual − expected| / max |expected|. */
  relMax: number;
  /** Index of the largest absolute difference. */
  worstIndex: number;
  /** Count of NaN/Infinity in `actual`. */
  nonFinite: number;
}

/** Computes {@linkcode CloseStats}. */
export function closeStats(actual: ArrayLike<number>, expected: ArrayLike<number>): CloseStats {
  if (actual.length !== expected.length) {
    throw new Error(`Length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
  let num = 0, den = 0, maxDiff = 0, maxRef = 0, worstIndex = -1, nonFinite = 0;
  for (let i = 0; i < actual.length; i++) {
    const x = actual[i], y = expected[i];
    if (!Number.isFinite(x)) {
      nonFinite++;
      if (worstIndex < 0) worstIndex = i;
      continue;
    }
    const d = Math.abs(x - y);
    num += d * d;
    den += y * y;
    if (d > maxDiff) {
      maxDiff = d;
      if (nonFinite === 0) worstIndex = i;
    }
    maxRef = Math.max(maxRef, Math.abs(y));
  }
  const relRms = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  const relMax = maxRef > 0 ? maxDiff / maxRef : maxDiff;
  return { relRms, relMax, worstIndex, nonFinite };
}

/** Options of {@linkcode assertClose}. */
export interface AssertCloseOptions {
  /** Largest allowed relative RMS error. Default 1e-5. */
  rms?: number;
  /** Largest allowed relative max error. Default 100 × `rms`. */
  max?: number;
  /** Printed with the numbers. */
  label?: string;
  /** Print the statistics even when they pass. Default: `$LASP_VERBOSE == "1"`. */
  verbose?: boolean;
}

/** Throws unless `actual` matches `expected` within the tolerances; prints the errors on failure. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: AssertCloseOptions = {},
): CloseStats {
  const rms = options.rms ?? 1e-5;
  const max = options.max ?? rms * 100;
  const stats = closeStats(actual, expected);
  const label = options.label ?? "values";
  const line = `${label}: rel RMS ${stats.relRms.toExponential(2)} (≤ ${rms.toExponential(0)}), ` +
    `rel max ${stats.relMax.toExponential(2)} (≤ ${max.toExponential(0)}), n=${actual.length}`;
  let verbose = options.verbose;
  if (verbose === undefined) {
    try {
      verbose = Deno.env.get("LASP_VERBOSE") === "1";
    } catch {
      verbose = false;
    }
  }
  if (stats.nonFinite > 0) {
    throw new Error(
      `${label}: ${stats.nonFinite} non-finite values (first at ${stats.worstIndex}: ${
        actual[stats.worstIndex]
      })`,
    );
  }
  if (!(stats.relRms <= rms) || !(stats.relMax <= max)) {
    const i = stats.worstIndex;
    throw new Error(`${line}; worst at ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
  if (verbose) console.log(line);
  return stats;
}

/**
 * Per-head, per-layer decay rates λ of lightning attention (o_t = Σ_{s≤t} λ^(t−s) (q_t·k_s) v_s).
 *
 * TNL's schedule (TransNormerLLM's released code): base slopes are ALiBi's,
 * s_h = 2^(−8(h+1)/H) for H a power of two (otherwise ALiBi's interleaving of the two nearest
 * powers), scaled per layer l of L by (1 − l/(L−1) + 1e-5), and λ = exp(−slope). The first
 * layer decays fastest; the last is almost decay-free (λ ≈ 1 − 1e-5·s_h). With one layer the
 * factor is taken as 1 + 1e-5 (TNL's formula divides by L − 1 = 0).
 * @module
 */
import type { DecaySchedule } from "./config.ts";

/** ALiBi's base slopes for `heads` heads (as used by TNL). */
export function alibiSlopes(heads: number): number[] {
  const powerOfTwo = (n: number) => {
    const start = 2 ** (-8 / n);
    return Array.from({ length: n }, (_, i) => start ** (i + 1));
  };
  if (Number.isInteger(Math.log2(heads))) return powerOfTwo(heads);
  const closest = 2 ** Math.floor(Math.log2(heads));
  const extra = alibiSlopes(2 * closest).filter((_, i) => i % 2 === 0).slice(0, heads - closest);
  return [...powerOfTwo(closest), ...extra];
}

/** λ[layer][head] for a schedule; all 1 for `"none"`. */
export function decayRates(
  config: { decay: DecaySchedule; layers: number; heads: number },
): number[][] {
  const { layers, heads } = config;
  if (config.decay === "none") return Array.from({ length: layers }, () => Array(heads).fill(1));
  const slopes = alibiSlopes(heads);
  return Array.from({ length: layers }, (_, l) => {
    const depth = layers > 1 ? 1 - l / (layers - 1) + 1e-5 : 1 + 1e-5;
    return slopes.map((s) => Math.exp(-s * depth));
  });
}

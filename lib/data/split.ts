/**
 * Deterministic train/validation split of a token stream: the last `valFraction` of the
 * tokens are held out (for the SOTU corpus, the most recent addresses). No randomness, so
 * every run and every rank agree on it.
 * @module
 */

/** Default share of tokens held out for validation. */
export const DEFAULT_VAL_FRACTION = 0.05;

/** Token ids as loaded (u16 shards stay u16). */
export type TokenArray = Uint16Array | Uint32Array;

/** `{train, val}` views of `tokens`: val is the last ⌊n·valFraction⌋ tokens. */
export function splitTokens(
  tokens: TokenArray,
  options: { valFraction?: number } = {},
): { train: TokenArray; val: TokenArray } {
  const f = options.valFraction ?? DEFAULT_VAL_FRACTION;
  if (!(f >= 0 && f < 1)) throw new Error(`Invalid valFraction ${f}: must be in [0, 1)`);
  const cut = tokens.length - Math.floor(tokens.length * f);
  return { train: tokens.subarray(0, cut), val: tokens.subarray(cut) };
}

/**
 * Splitting a sequence over the T ranks of a sequence-parallel group: rank t holds tokens
 * [t·N/T, (t+1)·N/T) of every sequence (LASP.md §3).
 * @module
 */

/** Typed arrays the split helpers take (token ids, activations, gradients). */
export type SequenceArray = Float32Array | Int32Array | Uint32Array;

/** A row-major array seen as [outer, length, inner]: e.g. q [B·H, N, dk], tokens [B, N, 1]. */
export interface SequenceLayout {
  /** Rows before the sequence axis (e.g. B·H). */
  outer: number;
  /** Tokens N. */
  length: number;
  /** Values per token (e.g. dk). */
  inner: number;
}

/**
 * Token range [start, end) of sequence rank `rank` of `ranks` for a sequence of `length`
 * tokens. The length must be a multiple of the number of ranks.
 */
export function sequenceRange(length: number, ranks: number, rank: number): [number, number] {
  if (!Number.isInteger(ranks) || ranks < 1) {
    throw new Error(`Invalid number of sequence ranks ${ranks}: must be a positive integer`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= ranks) {
    throw new Error(`Invalid sequence rank ${rank}: must be an integer in [0, ${ranks})`);
  }
  if (!Number.isInteger(length) || length < 1 || length % ranks !== 0) {
    throw new Error(
      `Cannot split sequence of ${length} tokens over ${ranks} ranks: ` +
        `the length must be a positive multiple of the number of ranks (${ranks})`,
    );
  }
  const n = length / ranks;
  return [rank * n, (rank + 1) * n];
}

function checkLayout(data: SequenceArray, layout: SequenceLayout): void {
  const { outer, length, inner } = layout;
  if (data.length !== outer * length * inner) {
    throw new Error(
      `Sequence array of ${data.length} values does not match [${outer}, ${length}, ${inner}]`,
    );
  }
}

/** Tokens [start, end) of every row of `data` ([outer, length, inner] → [outer, end−start, inner]). */
export function sliceSequence<A extends SequenceArray>(
  data: A,
  layout: SequenceLayout,
  range: readonly [number, number],
): A {
  checkLayout(data, layout);
  const [start, end] = range;
  if (!(0 <= start && start <= end && end <= layout.length)) {
    throw new Error(`Invalid token range [${start}, ${end}) for a sequence of ${layout.length}`);
  }
  const n = end - start, { outer, length, inner } = layout;
  const out = new (data.constructor as new (n: number) => A)(outer * n * inner);
  for (let o = 0; o < outer; o++) {
    const from = (o * length + start) * inner;
    out.set(data.subarray(from, from + n * inner), o * n * inner);
  }
  return out;
}

/** Concatenates the ranks' slices ([outer, n_t, inner] each) along the sequence. */
export function joinSequence<A extends SequenceArray>(
  parts: readonly A[],
  outer: number,
  inner: number,
): A {
  const lengths = parts.map((p) => p.length / (outer * inner));
  const total = lengths.reduce((a, b) => a + b, 0);
  if (parts.length === 0 || lengths.some((n) => !Number.isInteger(n))) {
    throw new Error(
      `Cannot join sequence parts of [${parts.map((p) => p.length).join(", ")}] values ` +
        `as [${outer}, n, ${inner}]`,
    );
  }
  const out = new (parts[0].constructor as new (n: number) => A)(outer * total * inner);
  let offset = 0;
  parts.forEach((part, t) => {
    const n = lengths[t];
    for (let o = 0; o < outer; o++) {
      out.set(part.subarray(o * n * inner, (o + 1) * n * inner), (o * total + offset) * inner);
    }
    offset += n;
  });
  return out;
}

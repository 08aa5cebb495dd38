/** Sequence split helpers and the host state chain of LASP (no GPU). */
import { deepEqual, throws } from "node:assert/strict";
import { joinSequence, sequenceRange, sliceSequence } from "../lib/lasp/split.ts";
import { decayPerHead, prefixState, propagateState, suffixGrad } from "../lib/lasp/state_chain.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";

Deno.test("sequenceRange: contiguous equal slices; indivisible lengths rejected", () => {
  deepEqual([0, 1, 2].map((t) => sequenceRange(111, 3, t)), [[0, 37], [37, 74], [74, 111]]);
  throws(
    () => sequenceRange(1000, 3, 0),
    /^Error: Cannot split sequence of 1000 tokens over 3 ranks: the length must be a positive multiple of the number of ranks \(3\)$/,
  );
  throws(() => sequenceRange(12, 4, 4), /Invalid sequence rank 4/);
  throws(() => sequenceRange(12, 0, 0), /Invalid number of sequence ranks 0/);
});

Deno.test("sliceSequence / joinSequence round trip over [outer, N, inner]", () => {
  const [outer, length, inner, T] = [3, 12, 5, 4];
  const data = Float32Array.from({ length: outer * length * inner }, (_, i) => i);
  const parts = [0, 1, 2, 3].map((t) =>
    sliceSequence(data, { outer, length, inner }, sequenceRange(length, T, t))
  );
  // rank 1 holds tokens 3..5; its row 2 starts with token 3 of row 2: element (2·12 + 3)·5
  deepEqual(Array.from(parts[1].subarray(2 * 15, 2 * 15 + 5)), [135, 136, 137, 138, 139]);
  deepEqual(joinSequence(parts, outer, inner), data);
  const tokens = Int32Array.from({ length: 2 * 6 }, (_, i) => i);
  deepEqual(
    sliceSequence(tokens, { outer: 2, length: 6, inner: 1 }, [2, 4]),
    Int32Array.of(2, 3, 8, 9),
  );
  throws(() => sliceSequence(data, { outer, length: 11, inner }, [0, 1]), /does not match/);
});

Deno.test("state chain: all-gather prefix/suffix sums equal the ring's hops (float64)", () => {
  const dims = { batch: 2, heads: 3, perHead: 7 }, size = 2 * 3 * 7, T = 5, n = 9;
  const lambdas = decayPerHead([0.9, 1, 0.97], 3);
  const locals = [0, 1, 2, 3, 4].map((u) => randomArray(size, 50 + u));
  const gathered = new Float32Array(T * size);
  locals.forEach((l, u) => gathered.set(l, u * size));
  // ring forward: S_0 = L_0, S_t = λ^n S_(t−1) + L_t; rank t's incoming state is S_(t−1)
  let s = locals[0];
  for (let t = 1; t < T; t++) {
    assertClose(prefixState(gathered, t, lambdas, n, dims)!, s, { rms: 1e-6, label: `S_${t - 1}` });
    s = propagateState(s, locals[t], lambdas, n, dims);
  }
  // the definition, for one element of head 0: S_3 = Σ_(u≤3) λ^((3−u)n) L_u
  const direct = [0, 1, 2, 3].reduce((acc, u) => acc + 0.9 ** ((3 - u) * n) * locals[u][0], 0);
  assertClose([prefixState(gathered, 4, lambdas, n, dims)![0]], [direct], { rms: 1e-6 });
  deepEqual(prefixState(gathered, 0, lambdas, n, dims), undefined);
  // ring backward: G_(T−1) = 0, G_(t−1) = λ^n G_t + D_t
  let g = locals[T - 1];
  for (let t = T - 2; t >= 0; t--) {
    assertClose(suffixGrad(gathered, t, lambdas, n, dims)!, g, { rms: 1e-6, label: `G_${t}` });
    g = propagateState(g, locals[t], lambdas, n, dims);
  }
  deepEqual(suffixGrad(gathered, T - 1, lambdas, n, dims), undefined);
  throws(() => decayPerHead([0.5, 1.5], 2), /decay\[1\] = 1.5 is outside \(0, 1\]/);
  throws(() => decayPerHead([0.5], 2), /expected one per head \(2\)/);
});

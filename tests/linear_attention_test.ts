import {
  laBackward,
  laForward,
  laLocalState,
  laLocalStateGrad,
  laPropagateState,
  type LaShape,
  type LaTuning,
  linearAttention,
  linearAttentionBackward,
  linearAttentionBackwardReference,
  linearAttentionReference,
} from "../lib/ops/linear_attention/mod.ts";
import { downloadTensors, type Gpu, Tensor, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { testGpu } from "./_gpu.ts";

/** fp32 kernels measure ≈2–4e-7 relative RMS against float64 here; the bound leaves 10× room. */
const RMS = 3e-6;

/** Random inputs of one case; decay 1 everywhere or ≈0.5 (different per head). */
function makeCase(shape: LaShape, seed: number, decayed: boolean) {
  const { batch: b, heads: h, length: n, dk, dv } = shape;
  const decay = Array.from({ length: h }, (_, i) => decayed ? 0.45 + (0.1 * i) / h : 1);
  return {
    shape,
    decay,
    q: randomArray(b * h * n * dk, seed),
    k: randomArray(b * h * n * dk, seed + 1),
    v: randomArray(b * h * n * dv, seed + 2),
    dO: randomArray(b * h * n * dv, seed + 3),
    initialState: randomArray(b * h * dk * dv, seed + 4),
    dFinalState: randomArray(b * h * dk * dv, seed + 5),
  };
}

type Case = ReturnType<typeof makeCase>;

function name(s: LaShape, decayed: boolean, extra = ""): string {
  return `[${s.batch},${s.heads},${s.length},${s.dk},${s.dv}] λ=${decayed ? "~0.5" : "1"}${extra}`;
}

/** Runs forward and backward on the GPU and checks every output against float64. */
async function checkAgainstReference(
  gpu: Gpu,
  c: Case,
  o: { init: boolean; dFinal: boolean; tuning?: LaTuning; label: string; rms?: number },
): Promise<void> {
  const rms = o.rms ?? RMS;
  const initialState = o.init ? c.initialState : undefined;
  const dFinalState = o.dFinal ? c.dFinalState : undefined;
  const inputs = { q: c.q, k: c.k, v: c.v, decay: c.decay, shape: c.shape, initialState };
  const fwd = await linearAttention(gpu, { ...inputs, tuning: o.tuning });
  const ref = linearAttentionReference(inputs);
  assertClose(fwd.o, ref.o, { rms, label: `o ${o.label}` });
  assertClose(fwd.finalState, ref.finalState, { rms, label: `finalState ${o.label}` });
  const bwd = await linearAttentionBackward(gpu, {
    ...inputs,
    dO: c.dO,
    dFinalState,
    tuning: o.tuning,
  });
  const grads = linearAttentionBackwardReference({ ...inputs, dO: c.dO, dFinalState });
  for (const g of ["dq", "dk", "dv", "dInitialState"] as const) {
    assertClose(bwd[g], grads[g], { rms, label: `${g} ${o.label}` });
  }
}

const SHAPES: LaShape[] = [
  { batch: 1, heads: 2, length: 1, dk: 16, dv: 32 },
  { batch: 2, heads: 2, length: 63, dk: 32, dv: 16 },
  { batch: 1, heads: 3, length: 100, dk: 16, dv: 16 },
  { batch: 1, heads: 2, length: 257, dk: 16, dv: 32 },
];

Deno.test("linear attention forward and backward match float64 (odd N, dk ≠ dv)", async () => {
  const gpu = await testGpu();
  let seed = 1;
  for (const shape of SHAPES) {
    for (const decayed of [false, true]) {
      const c = makeCase(shape, seed += 10, decayed);
      // alternate which of initial state / dFinalState are present
      const init = (seed / 10) % 2 === 0, dFinal = decayed;
      await checkAgainstReference(gpu, c, {
        init,
        dFinal,
        label: name(shape, decayed, ` S0=${init} dSN=${dFinal}`),
      });
    }
  }
});

Deno.test("linear attention at wide heads: dk = dv = 128 and 256, small N", async () => {
  const gpu = await testGpu();
  for (const [d, n] of [[128, 70], [256, 20]]) {
    const shape = { batch: 1, heads: 1, length: n, dk: d, dv: d };
    const c = makeCase(shape, 7 + d, true);
    await checkAgainstReference(gpu, c, { init: true, dFinal: true, label: name(shape, true) });
  }
});

Deno.test("linear attention with dk, dv not multiples of 4 (scalar loads)", async () => {
  const gpu = await testGpu();
  const shape = { batch: 1, heads: 2, length: 50, dk: 18, dv: 21 };
  const c = makeCase(shape, 99, true);
  await checkAgainstReference(gpu, c, { init: true, dFinal: true, label: name(shape, true) });
});

Deno.test("linear attention with chunks of 32 and tile variants", async () => {
  const gpu = await testGpu();
  const shape = { batch: 1, heads: 2, length: 100, dk: 32, dv: 64 };
  const c = makeCase(shape, 123, true);
  const tunings: LaTuning[] = [{ chunk: 32, partChunks: 3 }, { chunk: 64, tm: 8, tn: 4 }, {
    chunk: 64,
    bk: 8,
    partChunks: 2,
    stateTile: { bm: 64, bn: 64, tm: 4, tn: 4, bk: 8 },
  }];
  for (const tuning of tunings) {
    await checkAgainstReference(gpu, c, {
      init: true,
      dFinal: true,
      tuning,
      label: name(shape, true, ` ${JSON.stringify(tuning)}`),
    });
  }
});

Deno.test("linear attention with multi-chunk parts and several state segments", async () => {
  const gpu = await testGpu();
  const shape = { batch: 2, heads: 2, length: 300, dk: 16, dv: 32 };
  const c = makeCase(shape, 321, true);
  const perChunk = shape.batch * shape.heads * shape.dk * shape.dv * 4;
  // 5 chunks of 64 (the last one 44 tokens) as: parts of 2 and 3 in one segment; segments of
  // 2 chunks (parts of 1, 2); segments of 4 chunks in parts of 2 (the last part one chunk).
  const tunings: LaTuning[] = [
    { partChunks: 2 },
    { partChunks: 3 },
    { stateBudgetBytes: 2 * perChunk, partChunks: 1 },
    { stateBudgetBytes: 2 * perChunk, partChunks: 2 },
    { stateBudgetBytes: 4 * perChunk, partChunks: 2 },
  ];
  for (const [i, tuning] of tunings.entries()) {
    const init = i % 2 === 0;
    await checkAgainstReference(gpu, c, {
      init,
      dFinal: !init,
      tuning,
      label: name(shape, true, ` ${JSON.stringify(tuning)} S0=${init}`),
    });
  }
});

/** Rows [from, to) of every head of a [B, H, N, d] array. */
function tokens(a: Float32Array, s: LaShape, d: number, from: number, to: number): Float32Array {
  const out = new Float32Array(s.batch * s.heads * (to - from) * d);
  for (let bh = 0; bh < s.batch * s.heads; bh++) {
    out.set(a.subarray((bh * s.length + from) * d, (bh * s.length + to) * d), bh * (to - from) * d);
  }
  return out;
}

Deno.test("two halves with the state passed between equal one pass (forward and backward)", async () => {
  const gpu = await testGpu();
  const shape = { batch: 1, heads: 2, length: 257, dk: 16, dv: 32 };
  const c = makeCase(shape, 555, true);
  const cut = 100; // not a chunk boundary
  const part = (from: number, to: number) => {
    const s = { ...shape, length: to - from };
    const t = (a: Float32Array, d: number) => tokens(a, shape, d, from, to);
    return { shape: s, q: t(c.q, 16), k: t(c.k, 16), v: t(c.v, 32), dO: t(c.dO, 32) };
  };
  const a = part(0, cut), b = part(cut, shape.length);
  const whole = { q: c.q, k: c.k, v: c.v, decay: c.decay, shape, initialState: c.initialState };
  const one = await linearAttention(gpu, whole);
  const first = await linearAttention(gpu, { ...a, decay: c.decay, initialState: c.initialState });
  const second = await linearAttention(gpu, {
    ...b,
    decay: c.decay,
    initialState: first.finalState,
  });
  const joined = new Float32Array(one.o.length);
  const dv = shape.dv;
  for (let bh = 0; bh < 2; bh++) {
    joined.set(first.o.subarray(bh * cut * dv, (bh + 1) * cut * dv), bh * shape.length * dv);
    joined.set(
      second.o.subarray(bh * (shape.length - cut) * dv, (bh + 1) * (shape.length - cut) * dv),
      (bh * shape.length + cut) * dv,
    );
  }
  assertClose(joined, one.o, { rms: RMS, label: "o of two halves vs one pass" });
  assertClose(second.finalState, one.finalState, { rms: RMS, label: "final state of halves" });
  // Backward: the second half first, its dInitialState is the first half's dFinalState.
  const gOne = await linearAttentionBackward(gpu, {
    ...whole,
    dO: c.dO,
    dFinalState: c.dFinalState,
  });
  const gB = await linearAttentionBackward(gpu, {
    ...b,
    decay: c.decay,
    initialState: first.finalState,
    dFinalState: c.dFinalState,
  });
  const gA = await linearAttentionBackward(gpu, {
    ...a,
    decay: c.decay,
    initialState: c.initialState,
    dFinalState: gB.dInitialState,
  });
  for (const [g, d] of [["dq", 16], ["dk", 16], ["dv", 32]] as const) {
    assertClose(tokens(gOne[g], shape, d, 0, cut), gA[g], { rms: RMS, label: `${g} first half` });
    assertClose(tokens(gOne[g], shape, d, cut, shape.length), gB[g], {
      rms: RMS,
      label: `${g} second half`,
    });
  }
  assertClose(gA.dInitialState, gOne.dInitialState, { rms: RMS, label: "dInitialState halves" });
});

Deno.test("LASP pieces: local state, local state gradient, state propagation", async () => {
  const gpu = await testGpu();
  const shape = { batch: 2, heads: 2, length: 150, dk: 32, dv: 16 };
  const c = makeCase(shape, 777, true);
  const s = { qk: [2, 2, 150, 32], v: [2, 2, 150, 16], state: [2, 2, 32, 16] };
  const [q, k, v, dO] = [uploadTensor(gpu, c.q, s.qk), uploadTensor(gpu, c.k, s.qk)].concat(
    [uploadTensor(gpu, c.v, s.v), uploadTensor(gpu, c.dO, s.v)],
  );
  const s0 = uploadTensor(gpu, c.initialState, s.state);
  // parts of 2 chunks, segments of 2 parts: 3 chunks → one full and one partial part
  const tuning = { partChunks: 2, stateBudgetBytes: 4 * 2 * 2 * 32 * 16 * 4 };
  const local = await laLocalState(gpu, { k, v, decay: c.decay, tuning });
  const localGrad = await laLocalStateGrad(gpu, { q, dO, decay: c.decay, tuning });
  const propagated = await laPropagateState(gpu, { state: s0, local, decay: c.decay, length: 150 });
  const fwd = await laForward(gpu, { q, k, v, decay: c.decay, initialState: s0 });
  const bwd = await laBackward(gpu, { q, k, v, dO, decay: c.decay });
  if (!(fwd.o instanceof Tensor) || !(bwd.dq instanceof Tensor)) {
    throw new Error("tensors expected");
  }
  const [gotLocal, gotGrad, gotProp] = await downloadTensors(gpu, [local, localGrad, propagated]);
  const base = { q: c.q, k: c.k, v: c.v, decay: c.decay, shape };
  assertClose(gotLocal, linearAttentionReference(base).finalState, { rms: RMS, label: "local L" });
  const refGrad = linearAttentionBackwardReference({ ...base, dO: c.dO }).dInitialState;
  assertClose(gotGrad, refGrad, { rms: RMS, label: "local D" });
  const ref = linearAttentionReference({ ...base, initialState: c.initialState });
  assertClose(gotProp, ref.finalState, { rms: RMS, label: "λ^N S0 + L" });
  for (const t of [q, k, v, dO, s0, local, localGrad, propagated, fwd.o, fwd.finalState]) {
    t.release();
  }
  for (const t of Object.values(bwd)) t.release();
});

/** Rounds to f16 and back, so the reference sees what the f16 kernels see. */
const toF16 = (a: Float32Array) => Float32Array.from(Float16Array.from(a));

Deno.test("linear attention f16 storage (f32 accumulation): error reported", async () => {
  const gpu = await testGpu();
  if (!gpu.features.has("shader-f16")) throw new Error(`${gpu.adapterName} lacks shader-f16`);
  const shape = { batch: 1, heads: 2, length: 100, dk: 32, dv: 32 };
  const c = makeCase(shape, 4242, true);
  const h = { q: toF16(c.q), k: toF16(c.k), v: toF16(c.v), dO: toF16(c.dO) };
  const inputs = { ...h, decay: c.decay, shape, initialState: c.initialState };
  const fwd = await linearAttention(gpu, { ...inputs, dtype: "f16" });
  const bwd = await linearAttentionBackward(gpu, {
    ...inputs,
    dFinalState: c.dFinalState,
    dtype: "f16",
  });
  const ref = linearAttentionReference(inputs);
  const grads = linearAttentionBackwardReference({ ...inputs, dFinalState: c.dFinalState });
  // o, dq, dk, dv are stored in f16 (unit roundoff 4.9e-4): ≈2.8e-4 relative RMS expected.
  const verbose = true;
  assertClose(fwd.o, ref.o, { rms: 1e-3, label: "f16 o", verbose });
  assertClose(fwd.finalState, ref.finalState, { rms: RMS, label: "f16 finalState", verbose });
  for (const g of ["dq", "dk", "dv"] as const) {
    assertClose(bwd[g], grads[g], { rms: 1e-3, label: `f16 ${g}`, verbose });
  }
  assertClose(bwd.dInitialState, grads.dInitialState, {
    rms: RMS,
    label: "f16 dInitialState",
    verbose,
  });
  // Including the rounding of f32 inputs to f16 (what a user of the f16 path sees):
  const exact = linearAttentionReference({ ...c, initialState: c.initialState });
  assertClose(fwd.o, exact.o, { rms: 3e-3, label: "f16 o vs f32 inputs", verbose });
});

/** Expects `fn` to throw a one-line error matching `pattern`. */
async function expectError(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  let message: string | undefined;
  try {
    await fn();
  } catch (e) {
    message = (e as Error).message;
  }
  if (message === undefined) throw new Error(`expected an error matching ${pattern}`);
  if (!pattern.test(message) || message.includes("\n")) {
    throw new Error(`error "${message}" is not one line matching ${pattern}`);
  }
}

Deno.test("linear attention rejects bad input with one-line errors", async () => {
  const gpu = await testGpu();
  const shape = { batch: 1, heads: 2, length: 10, dk: 16, dv: 16 };
  const c = makeCase(shape, 1, true);
  const ok = { q: c.q, k: c.k, v: c.v, decay: c.decay, shape };
  await expectError(
    () => linearAttention(gpu, { ...ok, k: c.k.subarray(1) }),
    /k has 319 values, expected \[1, 2, 10, 16\] = 320/,
  );
  await expectError(
    () => linearAttention(gpu, { ...ok, decay: [0.5, 1.5] }),
    /decay\[1\] = 1.5 is outside \(0, 1\]/,
  );
  await expectError(
    () => linearAttention(gpu, { ...ok, decay: [0, 1] }),
    /decay\[0\] = 0 is outside/,
  );
  await expectError(
    () => linearAttention(gpu, { ...ok, decay: [0.5, 0.5, 0.5] }),
    /decay has 3 values/,
  );
  await expectError(
    () => linearAttention(gpu, { ...ok, shape: { ...shape, dk: 300 } }),
    /dk = 300 exceeds the maximum 256/,
  );
  await expectError(
    () => linearAttention(gpu, { ...ok, shape: { ...shape, length: 0 } }),
    /shape.length = 0 must be a positive integer/,
  );
  const q = uploadTensor(gpu, c.q, [1, 2, 10, 16]);
  const k = uploadTensor(gpu, c.k, [1, 2, 16, 10]);
  const v = uploadTensor(gpu, c.v, [1, 2, 10, 16]);
  await expectError(
    () => laForward(gpu, { q, k, v, decay: 0.9 }),
    /k has shape \[1, 2, 16, 10\], expected \[1, 2, 10, 16\]/,
  );
  await expectError(
    () => linearAttention(gpu, { q, k: c.k, v, decay: 0.9 } as never),
    /pass all tensors or all Float32Arrays/,
  );
  for (const t of [q, k, v]) t.release();
});

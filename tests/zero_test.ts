/**
 * Bucketed gradient reduction and ZeRO-0/1/2/3 AdamW on W = 2 and 3 ranks (Workers; W = 3 also
 * over WebSockets): reductions exact on integer-valued gradients, within 1e-6 of float64
 * otherwise and identical on every rank; three clipped AdamW steps at every stage against the
 * float64 AdamW of the summed gradients; layout and memory arithmetic.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { adamwReference, gradNormReference } from "../lib/ops/adamw/reference.ts";
import { backwardOrder, bucketUnits, layerUnits, ZeroLayout } from "../lib/train/zero_layout.ts";
import { assertExact } from "./_dist_expected.ts";
import { BUCKET_BYTES, gradOf, HYPER, initOf, LR, PARAMS, STEPS } from "./_zero_rank.ts";

function summed(step: number, W: number, integer = false): Float64Array[] {
  return PARAMS.map((p, i) => {
    const acc = new Float64Array(p.size);
    for (let r = 0; r < W; r++) {
      const g = gradOf(i, r, step, integer);
      for (let k = 0; k < p.size; k++) acc[k] += g[k];
    }
    return acc;
  });
}

/** Float64 AdamW trajectory of the summed gradients: params before each step and at the end. */
function reference(W: number) {
  let params: Float64Array[] = PARAMS.map((_, i) => Float64Array.from(initOf(i)));
  let m: Float64Array[] = PARAMS.map((p) => new Float64Array(p.size));
  let v: Float64Array[] = PARAMS.map((p) => new Float64Array(p.size));
  const before: Float64Array[][] = [], norms: number[] = [];
  for (let step = 1; step <= STEPS; step++) {
    before.push(params);
    const grads = summed(step, W);
    const [norm, gradScale] = gradNormReference(grads, HYPER.clip);
    norms.push(norm, gradScale);
    const next = PARAMS.map((p, i) =>
      adamwReference({ param: params[i], grad: grads[i], m: m[i], v: v[i] }, {
        ...HYPER,
        weightDecay: p.decay ? HYPER.weightDecay : 0,
        lr: LR[step],
        step,
        gradScale,
      })
    );
    params = next.map((s) => s.param);
    m = next.map((s) => s.m);
    v = next.map((s) => s.v);
  }
  return { before, final: params, norms, m, v };
}

function check(results: Record<string, Float32Array>[], W: number): void {
  const ref = reference(W);
  if (ref.norms[1] >= 1) throw new Error("test setup: the clip should be active");
  const order = backwardOrder(PARAMS);
  results.forEach((got, rank) => {
    const layout = new ZeroLayout(bucketUnits(order, BUCKET_BYTES), W, rank);
    for (const mode of ["all-reduce", "reduce-scatter"]) {
      for (const integer of [true, false]) {
        const key = `bucket/${mode}/${integer ? "int" : "float"}`;
        const sums = summed(0, W, integer);
        layout.units.forEach((unit, u) => {
          const flat = new Float64Array(unit.size);
          for (const e of unit.entries) {
            flat.set(sums[PARAMS.findIndex((p) => p.name === e.name)], e.offset);
          }
          const [s, e] = layout.shard(u);
          const want = mode === "all-reduce" ? flat : flat.slice(s, e);
          const label = `rank ${rank} ${key}/unit${u}`;
          if (integer) assertExact(got[`${key}/unit${u}`], Float32Array.from(want), label);
          else assertClose(got[`${key}/unit${u}`], want, { rms: 1e-6, label });
          // identical bits on every rank (shards: the same bits as rank 0's full sum)
          if (mode === "all-reduce") {
            assertExact(got[`${key}/unit${u}`], results[0][`${key}/unit${u}`], label);
          }
        });
        if (mode === "all-reduce") {
          PARAMS.forEach((p, i) => {
            const label = `rank ${rank} ${key} written back ${p.name}`;
            if (integer) assertExact(got[`${key}/${p.name}`], Float32Array.from(sums[i]), label);
            else assertClose(got[`${key}/${p.name}`], sums[i], { rms: 1e-6, label });
          });
        }
      }
    }
    for (const integer of ["int", "float"]) {
      for (
        const k of Object.keys(got).filter((k) => k.startsWith(`bucket/all-reduce/${integer}`))
      ) {
        const reused = k.replace("bucket/all-reduce/", "bucket/reused/");
        assertExact(got[reused], got[k], `rank ${rank} ${reused} (host buffers reused)`);
      }
    }
    for (const stage of [0, 1, 2, 3]) {
      PARAMS.forEach((p, i) => {
        const label = `rank ${rank} ZeRO-${stage} ${p.name}`;
        const final = got[`zero${stage}/final/${p.name}`];
        assertClose(final, ref.final[i], { rms: 1e-6, label });
        // the update itself, not only the parameter, within 2e-5
        const init = initOf(i);
        assertClose(
          final.map((x, k) => x - init[k]),
          ref.final[i].map((x, k) => x - init[k]),
          { rms: 2e-5, label: `${label} update` },
        );
        assertExact(
          final,
          results[0][`zero${stage}/final/${p.name}`],
          `${label} same on all ranks`,
        );
        assertClose(got[`zero${stage}/m/${p.name}`], ref.m[i], { rms: 1e-6, label: `${label} m` });
        assertClose(got[`zero${stage}/v/${p.name}`], ref.v[i], { rms: 1e-5, label: `${label} v` });
        for (const k of ["m", "v"]) {
          const a = got[`zero${stage}/${k}/${p.name}`], b = got[`zero${stage}/${k}2/${p.name}`];
          assertExact(b, a, `${label} ${k} through export/import`);
        }
        if (stage === 3) {
          assertExact(got[`zero3/export/${p.name}`], final, `${label} exported`);
          assertExact(got[`zero3/export2/${p.name}`], final, `${label} exported after import`);
        }
        if (stage === 3) {
          for (let s = 1; s <= STEPS; s++) {
            assertClose(got[`zero3/before${s}/${p.name}`], ref.before[s - 1][i], {
              rms: 1e-6,
              label: `${label} gathered before step ${s}`,
            });
          }
        }
      });
      assertClose(got[`zero${stage}/norms`], ref.norms, {
        rms: 1e-6,
        label: `ZeRO-${stage} norms`,
      });
    }
  });
}

for (const [W, transport] of [[2, "worker"], [3, "worker"], [3, "websocket"]] as const) {
  Deno.test(`bucketed reduction and ZeRO-0/1/2/3 match float64: W=${W}, ${transport}`, async () => {
    const results = await spawnWorkerRanks<Record<string, Float32Array>>({
      world: W,
      module: new URL("./_zero_rank.ts", import.meta.url),
      exportName: "zeroCases",
      transport,
      timeoutMs: 60_000,
      websocket: { partBytes: 4096, connectTimeoutMs: 30_000 },
    });
    check(results, W);
  });
}

Deno.test("ZeRO layout: buckets, layer units, shards, segments, memory", () => {
  const order = backwardOrder(PARAMS);
  const buckets = bucketUnits(order, BUCKET_BYTES);
  deepEqual(buckets.map((b) => b.map((p) => p.name)), [
    ["final.norm"],
    ["layers.1.w"],
    ["layers.1.norm"],
    ["layers.0.w"],
    ["layers.0.norm", "embed.weight"],
  ]);
  deepEqual(layerUnits(PARAMS).map((u) => u.map((p) => p.name)), [
    ["final.norm"],
    ["layers.1.norm", "layers.1.w"],
    ["layers.0.norm", "layers.0.w"],
    ["embed.weight"],
  ]);
  const layout = new ZeroLayout(buckets, 3, 1);
  equal(layout.total, 2080);
  deepEqual(layout.units.map((u) => u.size), [31, 777, 1, 1001, 270]);
  // unit 1 = layers.1.w (777): rank 1 owns [259, 518)
  deepEqual(layout.shard(1), [259, 518]);
  deepEqual(layout.segments(1), [
    { name: "layers.1.w", paramStart: 259, shardStart: 0, length: 259, decay: true },
  ]);
  // unit 4 = layers.0.norm (13) + embed.weight (257): rank 1 owns [90, 180), all embedding
  deepEqual(layout.segments(4), [
    { name: "embed.weight", paramStart: 77, shardStart: 0, length: 90, decay: true },
  ]);
  const l0 = new ZeroLayout(buckets, 3, 0);
  deepEqual(l0.segments(4).map((s) => [s.name, s.paramStart, s.shardStart, s.length, s.decay]), [
    ["layers.0.norm", 0, 0, 13, false],
    ["embed.weight", 0, 13, 77, true],
  ]);
  // rank 0's shards: 11 + 259 + 1 + 334 + 90 = 695 elements; largest unit 1001
  equal(layout.shardElements(0), 695);
  deepEqual(layout.memory(0), {
    stage: 0,
    paramBytes: 8320,
    gradBytes: 8320,
    momentBytes: 16640,
    totalBytes: 33280,
  });
  deepEqual(layout.memory(1).momentBytes, 2 * 4 * 695);
  deepEqual(layout.memory(2).gradBytes, 4 * (695 + 1001));
  deepEqual(layout.memory(3).paramBytes, 4 * (695 + 1001));
  throws(
    () => new ZeroLayout([[PARAMS[0]], [PARAMS[0]]], 2, 0),
    /embed.weight appears in two units/,
  );
  throws(() => layout.unitOf("nope"), /Unknown parameter nope/);
  throws(() => bucketUnits(order, 0), /Invalid bucket size 0/);
});

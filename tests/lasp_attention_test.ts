/**
 * LASP against the single-device op on the whole sequence: T ∈ {1, 2, 3, 4} ranks, both
 * transports, ring (with and without overlap) and all-gather, with and without decay, two
 * chained layers, batch 2, N/T = 37 tokens (not a multiple of the 32-token chunk). Outputs
 * and all gradients agree within relative RMS 2e-6 (max 2e-4); seen on lavapipe: ≤ 2.5e-7.
 * fp32 with another summation order: the chain crosses ranks where the single-device run
 * crosses chunks, and the state hops are summed in float64 on the host.
 */
import { deepEqual, equal } from "node:assert/strict";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { joinSequence } from "../lib/lasp/split.ts";
import type { LaspCounters } from "../lib/lasp/attention.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import {
  type ChainCase,
  type ChainResult,
  type ChainSizes,
  type laspChain,
  referenceChain,
} from "../lib/testing/lasp_chain.ts";
import { spawnProcessRanks } from "./_process_ranks.ts";
import { testGpu } from "./_gpu.ts";

const SIZES: ChainSizes = { batch: 2, heads: 2, local: 37, dk: 8, dv: 6, chunk: 32 };
const NONE: [number[], number[]] = [[1, 1], [1, 1]];
const DECAY: [number[], number[]] = [[0.9, 0.99], [0.8, 0.97]];
const CASES: ChainCase[] = [
  { mode: "ring", overlap: true, decays: NONE },
  { mode: "ring", overlap: true, decays: DECAY },
  { mode: "ring", overlap: false, decays: DECAY },
  { mode: "allgather", overlap: true, decays: NONE },
  { mode: "allgather", overlap: true, decays: DECAY },
];
const RMS = 2e-6;
/** Bytes of one state message: B·H·dk·dv floats. */
const STATE_BYTES = SIZES.batch * SIZES.heads * SIZES.dk * SIZES.dv * 4;

type Output = Awaited<ReturnType<typeof laspChain>>;

const references = new Map<string, ChainResult>();
async function reference(c: number, kase: ChainCase, T: number): Promise<ChainResult> {
  const key = `${c}/${JSON.stringify(kase)}/${T}`;
  if (!references.has(key)) {
    references.set(key, await referenceChain(await testGpu(), c, kase, SIZES, T * SIZES.local));
  }
  return references.get(key)!;
}

/** Traffic a rank must report: one state per layer and direction and hop, never more. */
function expectedCounters(c: ChainCase, t: number, T: number): Partial<LaspCounters> {
  if (c.mode === "allgather") {
    const n = 4 * (T - 1); // 2 layers × 2 directions × (T − 1) peers
    return { messagesSent: n, bytesSent: n * STATE_BYTES, messagesReceived: n };
  }
  const sent = 2 * (t < T - 1 ? 1 : 0) + 2 * (t > 0 ? 1 : 0);
  return { messagesSent: sent, bytesSent: sent * STATE_BYTES, messagesReceived: sent };
}

/** Compares the ranks' joined results of `cases` (as passed to laspChain) with the reference. */
async function check(outputs: Output[], T: number, cases: ChainCase[]) {
  const bh = SIZES.batch * SIZES.heads;
  for (const [c, kase] of cases.entries()) {
    const ref = await reference(c, kase, T);
    const label = `T=${T} ${kase.mode}${kase.overlap ? "" : " (no overlap)"} ${
      kase.decays === NONE ? "no decay" : "decay"
    }`;
    for (const key of Object.keys(ref) as (keyof ChainResult)[]) {
      const inner = key.startsWith("dq") || key.startsWith("dk") ? SIZES.dk : SIZES.dv;
      const joined = joinSequence(outputs.map((o) => o.results[c][key]), bh, inner);
      assertClose(joined, ref[key], { rms: RMS, label: `${label} ${key}` });
    }
    outputs.forEach((o, t) => {
      const { messagesSent, bytesSent, messagesReceived } = o.counters[c];
      deepEqual({ messagesSent, bytesSent, messagesReceived }, expectedCounters(kase, t, T));
    });
  }
}

for (const transport of ["worker", "websocket"] as const) {
  for (const T of [1, 2, 3, 4]) {
    Deno.test(`LASP equals the single-device op: ${transport} transport, T=${T}`, async () => {
      const outputs = await spawnWorkerRanks<Output>({
        world: T,
        module: new URL("../lib/testing/lasp_chain.ts", import.meta.url),
        exportName: "laspChain",
        args: { sizes: SIZES, cases: CASES },
        transport,
        timeoutMs: 120_000,
        websocket: { connectTimeoutMs: 60_000 },
      });
      equal(outputs.length, T);
      await check(outputs, T, CASES);
    });
  }
}

Deno.test("LASP in SP groups of a data-parallel world (W=4, SP=2)", async () => {
  const outputs = await spawnWorkerRanks<Output>({
    world: 4,
    sp: 2,
    module: new URL("../lib/testing/lasp_chain.ts", import.meta.url),
    exportName: "laspChain",
    args: { sizes: SIZES, cases: [CASES[1], CASES[4]] },
    timeoutMs: 120_000,
  });
  // each SP group {0, 1} and {2, 3} computes the same sequence
  await check(outputs.slice(0, 2), 2, [CASES[1], CASES[4]]);
  for (const [a, b] of [[0, 2], [1, 3]]) deepEqual(outputs[a].results, outputs[b].results);
});

Deno.test("LASP across 3 separate deno processes over WebSockets", async () => {
  const outputs = await spawnProcessRanks<Output>({
    world: 3,
    module: new URL("../lib/testing/lasp_chain.ts", import.meta.url),
    exportName: "laspChain",
    args: { sizes: SIZES, cases: CASES },
    timeoutMs: 120_000,
  });
  await check(outputs, 3, CASES);
});

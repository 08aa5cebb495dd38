import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { decodeShard, encodeShard, SHARD_HEADER_BYTES } from "../lib/data/shard.ts";
import { splitTokens } from "../lib/data/split.ts";
import { BatchLoader, evalBatches, inputsAndTargets } from "../lib/data/loader.ts";
import { deriveSeed, Rng } from "../lib/util/rng.ts";

Deno.test("token shard header round trip (u16 and u32) with the documented layout", () => {
  for (const [vocabSize, bytesPerToken] of [[50257, 2], [100000, 4]] as const) {
    const tokens = Uint32Array.from({ length: 1001 }, (_, i) => (i * 7919) % vocabSize);
    const bytes = encodeShard(tokens, { vocabSize, tokenizer: "gpt2" });
    deepStrictEqual(bytes.length, SHARD_HEADER_BYTES + 1001 * bytesPerToken);
    deepStrictEqual(new TextDecoder().decode(bytes.subarray(0, 8)), "LASPTOK\0");
    const view = new DataView(bytes.buffer);
    deepStrictEqual(
      [view.getUint32(8, true), view.getUint32(12, true), view.getBigUint64(16, true)],
      [1, bytesPerToken, 1001n],
    );
    const shard = decodeShard(bytes);
    deepStrictEqual(
      [shard.version, shard.bytesPerToken, shard.tokenCount, shard.vocabSize, shard.tokenizer],
      [1, bytesPerToken, 1001, vocabSize, "gpt2"],
    );
    deepStrictEqual(Uint32Array.from(shard.tokens), tokens);
  }
});

Deno.test("token shards with bad magic, version, length or ids are rejected clearly", () => {
  const good = encodeShard([1, 2, 3], { vocabSize: 256, tokenizer: "bytes" });
  const bad = good.slice();
  bad.set(new TextEncoder().encode("GPT2TOK\0"));
  throws(
    () => decodeShard(bad, "data.tok"),
    /data.tok is not a valid LASP token shard: bad magic 47 50 54 32 54 4f 4b 00 \(expected "LASPTOK\\0"\)/,
  );
  const version = good.slice();
  new DataView(version.buffer).setUint32(8, 2, true);
  throws(() => decodeShard(version), /version 2, this reader supports 1/);
  throws(
    () => decodeShard(good.subarray(0, good.length - 1)),
    /header says 3 tokens \(70 bytes\) but the file has 69 bytes/,
  );
  throws(() => decodeShard(good.subarray(0, 10)), /10 bytes, shorter than the 64-byte header/);
  const id = good.slice();
  new DataView(id.buffer).setUint16(SHARD_HEADER_BYTES + 2, 300, true);
  throws(() => decodeShard(id), /token 300 at position 1 ≥ vocabulary size 256/);
  throws(
    () => encodeShard([256], { vocabSize: 256, tokenizer: "bytes" }),
    /Token 256 at position 0 is outside the vocabulary \[0, 256\)/,
  );
});

Deno.test("train/validation split is the deterministic tail", () => {
  const tokens = Uint32Array.from({ length: 1000 }, (_, i) => i);
  const { train, val } = splitTokens(tokens, { valFraction: 0.1 });
  deepStrictEqual([train.length, val.length, val[0], train.at(-1)], [900, 100, 900, 899]);
  deepStrictEqual(splitTokens(tokens, { valFraction: 0.1 }), { train, val });
  deepStrictEqual(splitTokens(tokens, { valFraction: 0 }).val.length, 0);
  throws(
    () => splitTokens(tokens, { valFraction: 1 }),
    /Invalid valFraction 1: must be in \[0, 1\)/,
  );
});

Deno.test("rng: reproducible, resumable from its state, derived streams differ", () => {
  const a = new Rng(42), b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  deepStrictEqual(Array.from({ length: 5 }, () => b.nextU32()), xs);
  const resumed = new Rng(a.state);
  deepStrictEqual(resumed.float(), a.float());
  notDeepStrictEqual(deriveSeed(1, 0), deriveSeed(1, 1));
  notDeepStrictEqual(deriveSeed(1, 0), deriveSeed(2, 0));
  const counts = new Array(3).fill(0);
  for (let i = 0; i < 3000; i++) counts[a.int(3)]++;
  ok(counts.every((c) => c > 900 && c < 1100), `int(3) is uniform: ${counts}`);
});

const stream = Uint32Array.from({ length: 1000 }, (_, i) => i); // token i at position i

Deno.test("loader windows are N+1 consecutive tokens; an epoch visits each window once", () => {
  // Batch size 1: the position after next() tells the epoch of the window just taken.
  const loader = new BatchLoader(stream, { batchSize: 1, seqLen: 16, seed: 7 });
  const epochs: number[][] = [[], []];
  while (loader.position.epoch < 2) {
    const w = loader.next().tokens;
    ok(w.length === 17 && w.every((t, j) => t === w[0] + j), "window is consecutive");
    if (loader.position.epoch < 2) epochs[loader.position.epoch].push(w[0]);
  }
  for (const starts of epochs) {
    const offset = Math.min(...starts);
    const sorted = [...starts].sort((x, y) => x - y);
    deepStrictEqual(sorted, sorted.map((_, k) => offset + 16 * k)); // every window once
    ok(offset < 16 && sorted.length === Math.floor((999 - offset) / 16));
  }
  notDeepStrictEqual(epochs[0], epochs[1]); // a new order (and offset) each epoch
  const { inputs, targets } = inputsAndTargets(
    new BatchLoader(stream, { batchSize: 2, seqLen: 4 }).next(),
  );
  deepStrictEqual([...targets], [...inputs].map((t) => t + 1));
});

Deno.test("loader resumes exactly from a saved position, across epochs and shards", () => {
  for (const shard of [{ index: 0, count: 1 }, { index: 1, count: 3 }]) {
    const options = { batchSize: 4, seqLen: 32, seed: 123, shard };
    const straight = new BatchLoader(stream, options);
    const batches = Array.from({ length: 40 }, () => straight.next().tokens); // > 1 epoch
    ok(straight.position.epoch >= 2);
    for (const stop of [1, 7, 13, 29]) {
      const first = new BatchLoader(stream, options);
      for (let k = 0; k < stop; k++) first.next();
      const saved = JSON.parse(JSON.stringify(first.position));
      const resumed = new BatchLoader(stream, { ...options, seed: 999, position: saved });
      for (let k = stop; k < 40; k++) deepStrictEqual(resumed.next().tokens, batches[k]);
    }
  }
  // Shards of one step see disjoint windows.
  const [a, b] = [0, 1].map((index) =>
    new BatchLoader(stream, { batchSize: 2, seqLen: 8, seed: 5, shard: { index, count: 2 } }).next()
  );
  const firsts = (t: Uint32Array) => [t[0], t[9]];
  ok(firsts(a.tokens).every((x) => !firsts(b.tokens).includes(x)));
  // Another seed, another order.
  notDeepStrictEqual(
    new BatchLoader(stream, { batchSize: 4, seqLen: 32, seed: 1 }).next().tokens,
    new BatchLoader(stream, { batchSize: 4, seqLen: 32, seed: 2 }).next().tokens,
  );
});

Deno.test("loader and eval batches reject or handle edge cases", () => {
  throws(
    () => new BatchLoader(stream.subarray(0, 8), { batchSize: 1, seqLen: 8 }),
    /8 tokens are too few for one window of seqLen \+ 1 = 9/,
  );
  throws(
    () => new BatchLoader(stream, { batchSize: 0, seqLen: 8 }),
    /batchSize 0 must be a positive integer/,
  );
  throws(
    () => new BatchLoader(stream, { batchSize: 1, seqLen: 8, shard: { index: 2, count: 2 } }),
    /shard 2 of 2/,
  );
  // Exactly one window: every batch repeats it.
  const one = new BatchLoader(stream.subarray(0, 9), { batchSize: 2, seqLen: 8 });
  deepStrictEqual([...one.next().tokens], [...stream.subarray(0, 9), ...stream.subarray(0, 9)]);
  const evals = [...evalBatches(stream.subarray(0, 101), { batchSize: 3, seqLen: 10 })];
  deepStrictEqual(evals.map((b) => b.batchSize), [3, 3, 3, 1]);
  deepStrictEqual(evals[3].tokens[0], 90);
  deepStrictEqual([...evalBatches(stream, { batchSize: 3, seqLen: 10, maxBatches: 2 })].length, 2);
});

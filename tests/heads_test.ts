import { rejects } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { headsToTokens, mergeQkvu, splitQkvu, tokensToHeads } from "../lib/ops/heads/heads.ts";
import {
  headsToTokensReference,
  splitQkvuReference,
  tokensToHeadsReference,
} from "../lib/ops/heads/reference.ts";
import { testGpu } from "./_gpu.ts";

for (
  const dims of [
    { batch: 1, length: 1, heads: 1, headDim: 1 },
    { batch: 2, length: 37, heads: 3, headDim: 5 },
    { batch: 3, length: 100, heads: 4, headDim: 16 },
  ]
) {
  Deno.test(`head split/merge are exact moves (${JSON.stringify(dims)})`, async () => {
    const gpu = await testGpu();
    const { batch: B, length: n, heads: H, headDim: hd } = dims;
    const D = H * hd;
    const fusedHost = randomArray(B * n * 4 * D, 7 + n);
    const fused = uploadTensor(gpu, fusedHost, [B, n, 4 * D]);
    const parts = await splitQkvu(gpu, fused, dims);
    const merged = await mergeQkvu(gpu, parts, dims);
    const tokensHost = randomArray(B * n * D, 11 + n);
    const tokens = uploadTensor(gpu, tokensHost, [B, n, D]);
    const heads = await tokensToHeads(gpu, tokens, dims);
    const back = await headsToTokens(gpu, heads, dims);
    const outs = [parts.q, parts.k, parts.v, parts.u, merged, heads, back];
    const [q, k, v, u, m, h, t] = await downloadTensors(gpu, outs);
    const ref = splitQkvuReference(fusedHost, dims);
    assertClose(q, ref.q, { rms: 0, label: "q" });
    assertClose(k, ref.k, { rms: 0, label: "k" });
    assertClose(v, ref.v, { rms: 0, label: "v" });
    assertClose(u, ref.u, { rms: 0, label: "u" });
    assertClose(m, fusedHost, { rms: 0, label: "merge(split(x)) = x" });
    assertClose(h, tokensToHeadsReference(tokensHost, dims), { rms: 0, label: "to heads" });
    assertClose(t, headsToTokensReference(h, dims), { rms: 0, label: "to tokens" });
    assertClose(t, tokensHost, { rms: 0, label: "round trip" });
    for (const x of [fused, tokens, ...outs]) x.release();
  });
}

Deno.test("head split/merge by row chunks (crossing sequence boundaries) equal the whole move", async () => {
  const gpu = await testGpu();
  const dims = { batch: 3, length: 7, heads: 2, headDim: 3 }; // 21 token rows, D = 6
  const width = 4 * 6;
  const fusedHost = randomArray(21 * width, 5);
  const ref = splitQkvuReference(fusedHost, dims);
  const into = await splitQkvu(
    gpu,
    uploadTensor(gpu, randomArray(21 * width, 6), [21, width]),
    dims,
  );
  const chunks: number[][] = [[0, 5], [5, 9], [14, 7]]; // [rowOffset, rows]
  const merged = [];
  for (const [rowOffset, rows] of chunks) {
    const chunk = uploadTensor(
      gpu,
      fusedHost.subarray(rowOffset * width, (rowOffset + rows) * width),
      [rows, width],
    );
    await splitQkvu(gpu, chunk, { ...dims, rowOffset, into });
    chunk.release();
  }
  for (const [rowOffset, rows] of chunks) {
    merged.push(await mergeQkvu(gpu, into, { ...dims, rowOffset, rows }));
  }
  const [q, k, v, u, ...m] = await downloadTensors(gpu, [
    into.q,
    into.k,
    into.v,
    into.u,
    ...merged,
  ]);
  assertClose(q, ref.q, { rms: 0, label: "q" });
  assertClose(k, ref.k, { rms: 0, label: "k" });
  assertClose(v, ref.v, { rms: 0, label: "v" });
  assertClose(u, ref.u, { rms: 0, label: "u" });
  chunks.forEach(([rowOffset, rows], i) =>
    assertClose(m[i], fusedHost.subarray(rowOffset * width, (rowOffset + rows) * width), {
      rms: 0,
      label: `merged rows ${rowOffset}+${rows}`,
    })
  );
  await rejects(
    mergeQkvu(gpu, into, { ...dims, rowOffset: 20, rows: 2 }),
    /mergeQkvu: rows 20 … 21 must lie within the 21 token rows \(B·n\)/,
  );
  for (const x of [into.q, into.k, into.v, into.u, ...merged]) x.release();
});

Deno.test("head moves reject wrong shapes", async () => {
  const gpu = await testGpu();
  const dims = { batch: 1, length: 4, heads: 2, headDim: 3 };
  const bad = uploadTensor(gpu, randomArray(20, 1), [1, 4, 5]);
  await rejects(
    splitQkvu(gpu, bad, dims),
    /splitQkvu: fused has shape \[1, 4, 5\], expected \[1, 4, 24\]/,
  );
  await rejects(
    headsToTokens(gpu, bad, dims),
    /headsToTokens: input f32 \[1, 4, 5\] must be f32 \[1, 2, 4, 3\]/,
  );
  await rejects(
    splitQkvu(gpu, bad, { ...dims, heads: 0 }),
    /heads: heads = 0 must be a positive integer/,
  );
  bad.release();
});

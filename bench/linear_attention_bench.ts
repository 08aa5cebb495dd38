// `deno bench`: fused linear attention forward and forward+backward at sizes a CPU (lavapipe)
// runs in reasonable time. Each iteration waits for the GPU; bench/linear_attention_table.ts
// gives GPU-timestamp numbers and TFLOP/s at the paper's sizes.
import { laBackward, laForward } from "../lib/ops/linear_attention/mod.ts";
import { openDevice, type Tensor, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";

const gpu = await openDevice();
const release = (ts: Tensor[]) => ts.forEach((t) => t.release());
for (const [b, h, n, d] of [[1, 2, 256, 32], [1, 4, 1024, 64]]) {
  const shape = [b, h, n, d], size = b * h * n * d;
  const [q, k, v, dO] = [1, 2, 3, 4].map((s) =>
    uploadTensor(gpu, randomArray(size, s, -0.5, 0.5), shape)
  );
  const decay = Array.from({ length: h }, (_, i) => 1 - 0.05 * i);
  const name = `linear attention B=${b} H=${h} N=${n} d=${d}`;
  Deno.bench(`${name} forward on ${gpu.adapterName}`, { group: name }, async () => {
    const r = await laForward(gpu, { q, k, v, decay });
    release([r.o, r.finalState]);
    await gpu.commands.finish();
  });
  Deno.bench(`${name} forward+backward`, { group: name }, async () => {
    const r = await laForward(gpu, { q, k, v, decay });
    const g = await laBackward(gpu, { q, k, v, dO, decay });
    release([r.o, r.finalState, g.dq, g.dk, g.dv, g.dInitialState]);
    await gpu.commands.finish();
  });
}

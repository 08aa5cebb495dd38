// `deno bench`: the tiled matmul at sizes a CPU (lavapipe) runs in reasonable time.
// GFLOP/s = 2·M·N·K / time; deno bench prints time per iteration (each waits for the GPU).
import { matmul, openDevice, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";

const gpu = await openDevice();
for (const n of [128, 256, 512]) {
  const a = uploadTensor(gpu, randomArray(n * n, 1), [n, n]);
  const b = uploadTensor(gpu, randomArray(n * n, 2), [n, n]);
  const c = await matmul(gpu, a, b);
  Deno.bench(
    `matmul ${n}³ (${(2 * n ** 3 / 1e9).toFixed(3)} GFLOP) on ${gpu.adapterName}`,
    async () => {
      await matmul(gpu, a, b, { out: c });
      await gpu.commands.finish();
    },
  );
}

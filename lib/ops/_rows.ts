/**
 * Launching "one workgroup per row" kernels (SRMSNorm, cross-entropy): the grid, and the
 * threads per row. Their WGSL declares `const WG: u32 = 256u;` and sizes workgroups and
 * reduction arrays by WG; narrow rows get a smaller power of two substituted into the text
 * (part of the cache key), so small models do not pay for idle threads and reduction steps
 * (it matters most on CPU adapters).
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { linearWorkgroups } from "../gpu/commands.ts";
import type { Kernel } from "../gpu/kernel.ts";
import { shaderSource } from "../gpu/shader_source.ts";

const WG_LINE = "const WG: u32 = 256u;";

/** Threads per row of width `d`: from 32 up to 256, keeping ≥ 4 elements per thread. */
export function rowThreads(d: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < d) wg *= 2;
  return wg;
}

/** Workgroup counts for one workgroup per row (x up to the limit, then y). */
export function rowWorkgroups(gpu: Gpu, rows: number): [number, number] {
  return linearWorkgroups(rows, 1, gpu.limits.maxComputeWorkgroupsPerDimension);
}

/** Entry point `entryPoint` of `shaders/<file>` with `wg` threads per row (default 256). */
export function rowKernel(
  gpu: Gpu,
  file: string,
  entryPoint: string,
  options: { wg?: number; constants?: Record<string, number> } = {},
): Promise<Kernel> {
  const wg = options.wg ?? 256;
  return gpu.kernels.get({
    key: `${file}:wg=${wg}`,
    code: async () => {
      const text = await shaderSource(file);
      if (!text.includes(WG_LINE)) throw new Error(`shaders/${file} lacks "${WG_LINE}"`);
      return text.replace(WG_LINE, `const WG: u32 = ${wg}u;`);
    },
    entryPoint,
    constants: options.constants,
  });
}

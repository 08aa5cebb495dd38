/** Shared test device: one per test process, with NaN-filled buffers. */
import { type Gpu, openDevice } from "../mod.ts";

let gpu: Promise<Gpu> | undefined;
/** The test process's device (built-in WebGPU on CPU machines), NaN-filling every buffer. */
export function testGpu(): Promise<Gpu> {
  gpu ??= openDevice({ nanFill: true });
  return gpu;
}

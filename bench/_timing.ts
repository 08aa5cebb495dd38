/**
 * Timing helpers shared by the benchmark scripts: GPU time from timestamp queries where the
 * device has them, else wall clock around many iterations with a single wait (the built-in
 * WebGPU waits ≈11 ms per `onSubmittedWorkDone`, so per-iteration waits would swamp it).
 * @module
 */
import { type Gpu, GpuProfiler } from "../mod.ts";

/** Result of {@linkcode timeGpu}. */
export interface Timing {
  /** Milliseconds per iteration: the GPU-timestamp median where available, else `wallMs`. */
  ms: number;
  /** How `ms` was measured. */
  method: "gpu-timestamps" | "wall-clock";
  /** Wall clock per iteration over back-to-back iterations ended by a single wait. */
  wallMs: number;
}

/** Parses `--name value` style flags shared by the scripts. */
export function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

/**
 * Median time of one iteration of `step` (which records GPU work). With timestamps, each
 * iteration's dispatches are summed, so launch gaps between dispatches are not counted.
 */
export async function timeGpu(
  gpu: Gpu,
  step: () => Promise<void>,
  options: { warmup?: number; iterations?: number } = {},
): Promise<Timing> {
  const warmup = options.warmup ?? 2, iterations = options.iterations ?? 10;
  for (let i = 0; i < warmup; i++) await step();
  await gpu.commands.finish();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await step();
  await gpu.commands.finish();
  const wallMs = (performance.now() - t0) / iterations;
  if (gpu.features.has("timestamp-query")) {
    const profiler = new GpuProfiler(gpu);
    const perIteration: number[] = [];
    for (let i = 0; i < iterations; i++) {
      profiler.start();
      await step();
      const entries = await profiler.stop();
      perIteration.push(entries.reduce((s, e) => s + e.ms, 0));
    }
    profiler.destroy();
    // software adapters may report zero-length timestamps: fall through to the wall clock
    if (perIteration.every((ms) => ms > 0)) {
      return { ms: median(perIteration), method: "gpu-timestamps", wallMs };
    }
  }
  return { ms: wallMs, method: "wall-clock", wallMs };
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

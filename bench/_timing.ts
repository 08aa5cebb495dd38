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
 * Median time of one iteration of `step` (which records GPU work). The GPU first runs for at
 * least `minWarmupMs` (clocks ramp up from idle), then iterations are recorded back to back:
 * once for the wall clock (one wait at the end), once under timestamps, where each
 * iteration's dispatches are summed (launch gaps between dispatches are not counted).
 */
export async function timeGpu(
  gpu: Gpu,
  step: () => Promise<void>,
  options: { warmup?: number; iterations?: number; minWarmupMs?: number } = {},
): Promise<Timing> {
  const warmup = options.warmup ?? 3, iterations = options.iterations ?? 10;
  const minWarmupMs = options.minWarmupMs ?? 500;
  const w0 = performance.now();
  for (let n = 0; n < warmup || performance.now() - w0 < minWarmupMs; n++) {
    await step();
    await gpu.commands.finish();
  }
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await step();
  await gpu.commands.finish();
  const wallMs = (performance.now() - t0) / iterations;
  if (gpu.features.has("timestamp-query")) {
    const perIteration = await timestampIterations(gpu, step, iterations);
    // software adapters may report zero-length timestamps: fall through to the wall clock
    if (perIteration.every((ms) => ms > 0)) {
      return { ms: median(perIteration), method: "gpu-timestamps", wallMs };
    }
  }
  return { ms: wallMs, method: "wall-clock", wallMs };
}

/** GPU time of each of `iterations` back-to-back iterations, in as few profiled regions as fit. */
async function timestampIterations(
  gpu: Gpu,
  step: () => Promise<void>,
  iterations: number,
): Promise<number[]> {
  const profiler = new GpuProfiler(gpu);
  const perIteration: number[] = [];
  try {
    while (perIteration.length < iterations) {
      profiler.start();
      const marks = [0];
      do {
        await step();
        marks.push(profiler.count);
        // stop before a further iteration could overflow the query set
      } while (
        perIteration.length + marks.length - 1 < iterations &&
        profiler.count + (profiler.count / (marks.length - 1)) <= profiler.capacity
      );
      await profiler.stop();
      if (profiler.count > profiler.capacity) {
        throw new Error("one iteration overflows the profiler");
      }
      const times = profiler.dispatchTimes;
      for (let i = 1; i < marks.length; i++) {
        perIteration.push(times.slice(marks[i - 1], marks[i]).reduce((a, b) => a + b, 0));
      }
    }
  } finally {
    profiler.destroy();
  }
  return perIteration;
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

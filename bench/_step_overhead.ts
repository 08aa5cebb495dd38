/**
 * Where the wall time of a training step goes, per recording setting, on one implementation:
 * clean wall time per step; then one step with every WebGPU method timed ({@linkcode ApiTracer}:
 * calls and host ms per method, ms awaiting GPU promises); and one step under GPU timestamps
 * (busy time, span, top kernels). Before timing, every setting trains a small model for a few
 * steps and must give the baseline's losses and gradient norms.
 * @module
 */
import { type Gpu, GpuProfiler, type StepStats } from "../mod.ts";
import { ApiTracer, type MethodStats } from "./_api_tracer.ts";
import { createTrainSetup, parseVariant } from "./_train_setup.ts";
import { RECORDING_SETTINGS } from "./_recording_settings.ts";

/** One setting's numbers for one step. */
export interface SettingResult {
  /** Mean wall ms per step, untraced (two rounds of `steps` steps). */
  wallMs: number;
  /** Wall ms of the traced step. */
  tracedWallMs: number;
  /** Per method of the traced step. */
  methods: Record<string, MethodStats>;
  /** Bind groups created / answered from the cache during the traced step. */
  bindGroups: { hits: number; misses: number };
}

/** What {@linkcode stepOverhead} measured. */
export interface StepResult {
  /** Variant timed. */
  variant: string;
  /** Per setting: worst relative difference of loss and gradient norm from the baseline. */
  validation: Record<string, { worst: number; bitwise: boolean }>;
  /** Per setting. */
  settings: Record<string, SettingResult>;
  /** GPU timestamps of one baseline step (absent without timestamp-query). */
  gpu?: {
    busyMs: number;
    spanMs: number;
    dispatches: number;
    untimed: number;
    top: [string, number][];
  };
}

/** Validates and times `variant` under each of `settings` (the first is the reference). */
export async function stepOverhead(
  gpu: Gpu,
  options: {
    variant: string;
    validate: string;
    settings: string[];
    steps: number;
    log: (line: string) => void;
  },
): Promise<StepResult> {
  const { settings, log } = options;
  const validation: StepResult["validation"] = {};
  let reference: number[] | undefined;
  for (const name of settings) {
    const got = await trainValues(gpu, options.validate, name);
    reference ??= got;
    const worst = Math.max(
      ...got.map((v, i) => Math.abs(v - reference![i]) / Math.max(1e-30, Math.abs(reference![i]))),
    );
    validation[name] = { worst, bitwise: got.every((v, i) => v === reference![i]) };
    if (!(worst <= 1e-5)) {
      throw new Error(
        `${name}: losses/gradient norms ${got} differ from the baseline's ${reference} (worst relative ${worst})`,
      );
    }
    log(
      `validation ${options.validate} ${name}: worst relative difference ${worst.toExponential(1)}`,
    );
  }

  const setup = await createTrainSetup(gpu, parseVariant(options.variant));
  const { trainer, micro } = setup;
  const commands = gpu.commands;
  const step = async (): Promise<StepStats> => await trainer.step(micro);
  const result: StepResult = { variant: options.variant, validation, settings: {} };
  try {
    commands.setRecording(RECORDING_SETTINGS[settings[0]]);
    await step(); // pipelines, pool
    // two rounds, the second in reverse order, so a drift over the run (clocks, memory)
    // does not favour the settings timed later
    const wall: Record<string, number> = {};
    for (const order of [settings, [...settings].reverse()]) {
      for (const name of order) {
        commands.setRecording(RECORDING_SETTINGS[name]);
        await step(); // this setting's buffers and bind groups
        const t0 = performance.now();
        for (let s = 0; s < options.steps; s++) await step();
        const ms = (performance.now() - t0) / options.steps;
        wall[name] = wall[name] === undefined ? ms : (wall[name] + ms) / 2;
        log(`${options.variant} ${name}: ${ms.toFixed(1)} ms/step`);
      }
    }
    const tracer = new ApiTracer().install(gpu);
    try {
      for (const name of settings) {
        commands.setRecording(RECORDING_SETTINGS[name]);
        await step();
        tracer.reset();
        const before = commands.bindGroupStats;
        const t0 = performance.now();
        await step();
        const tracedWallMs = performance.now() - t0;
        const after = commands.bindGroupStats;
        result.settings[name] = {
          wallMs: wall[name],
          tracedWallMs,
          // copies: the objects keep counting until the next reset
          methods: Object.fromEntries([...tracer.stats].map(([m, x]) => [m, { ...x }])),
          bindGroups: { hits: after.hits - before.hits, misses: after.misses - before.misses },
        };
        log(`${options.variant} ${name}: traced step ${tracedWallMs.toFixed(1)} ms`);
      }
    } finally {
      tracer.uninstall();
    }
    if (gpu.features.has("timestamp-query")) {
      commands.setRecording(RECORDING_SETTINGS[settings[0]]);
      const profiler = new GpuProfiler(gpu).start();
      await step();
      const entries = (await profiler.stop()).sort((a, b) => b.ms - a.ms);
      result.gpu = {
        busyMs: entries.reduce((s, e) => s + e.ms, 0),
        spanMs: profiler.spanMs,
        dispatches: profiler.count,
        untimed: profiler.untimed,
        top: entries.slice(0, 8).map((e) => [e.label, e.ms]),
      };
      profiler.destroy();
    }
  } finally {
    trainer.destroy();
    await commands.finish();
    gpu.pool.clear();
  }
  return result;
}

/** Losses and gradient norms of 3 steps of a fresh trainer under one recording setting. */
async function trainValues(gpu: Gpu, variant: string, setting: string): Promise<number[]> {
  gpu.commands.setRecording(RECORDING_SETTINGS[setting]);
  const { trainer, micro } = await createTrainSetup(gpu, parseVariant(variant));
  try {
    const values: number[] = [];
    for (let s = 0; s < 3; s++) {
      const r = await trainer.step(micro);
      values.push(r.loss, r.gradNorm);
    }
    return values;
  } finally {
    trainer.destroy();
    await gpu.commands.finish();
    gpu.pool.clear();
  }
}

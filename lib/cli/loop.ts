/**
 * The training loop of one rank, against {@linkcode TrainerLike}: data → steps → validation
 * → checkpoints → outputs. Every rank runs it in lockstep (the trainer's steps are
 * collective); rank 0 alone prints, writes metrics.jsonl, loss.svg and checkpoints.
 * @module
 */
import type { Communicator } from "../dist/communicator.ts";
import type { ModelConfig } from "../model/config.ts";
import { parameterCount } from "../model/params.ts";
import type {
  MicroBatch,
  StepStats,
  TrainConfig,
  TrainerLike,
  TrainerState,
} from "../train/types.ts";
import { checkpointName, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { openRankData, type RankLayout, sliceMicroBatch, validationBatches } from "./data.ts";
import { MetricsLog } from "./metrics.ts";
import type { TrainOptions } from "./options.ts";
import { Progress } from "./progress.ts";
import { lossCurveSvg } from "./svg.ts";
import type { Tokenizer } from "../data/tokenizer.ts";

/** What every rank is started with (structured-cloneable). */
export interface RankArgs {
  /** The run's options (defaults filled in). */
  options: TrainOptions;
  /** The model. */
  model: ModelConfig;
  /** The optimization settings. */
  train: TrainConfig;
  /** Resolved checkpoint path to continue from. */
  resume?: string;
  /** Rank 0's stdout is a terminal (draw a bar). */
  tty: boolean;
  /** Rank 0 prints progress and messages. Default true. */
  verbose?: boolean;
  /**
   * Int32 flag set (to 1) by this process on Ctrl-C: the ranks agree after each step and
   * stop together with a checkpoint.
   */
  interrupt?: SharedArrayBuffer;
}

/** One validation. */
export interface EvalResult {
  /** Optimizer steps done. */
  step: number;
  /** Mean validation loss. */
  valLoss: number;
}

/** What a rank reports when done (rank 0's is the run's result). */
export interface RankResult {
  /** Steps done before this process started (0 unless resumed). */
  startStep: number;
  /** Stats of the steps this process ran. */
  steps: StepStats[];
  /** Validations of this process. */
  evals: EvalResult[];
  /** Checkpoints written (rank 0). */
  checkpoints: string[];
  /** The generated sample (rank 0, when asked for). */
  sample?: string;
}

/** Generates ids after `prompt` from exported parameters (rank 0 only). */
export type Sampler = (
  params: TrainerState["params"],
  options: { prompt: number[]; maxTokens: number; temperature: number; seed: number },
) => Promise<number[]>;

/** Runs the rank's part of training with `trainer`. */
export async function trainLoop(
  comm: Communicator,
  trainer: TrainerLike,
  args: RankArgs & { sample?: Sampler; describeDevice?: string },
): Promise<RankResult> {
  const { options: o, model } = args;
  const lead = comm.rank === 0, verbose = lead && (args.verbose ?? true);
  const layout: RankLayout = { sp: comm.sp, spRank: comm.spRank, dp: comm.dp, dpRank: comm.dpRank };

  let startStep = 0, position;
  if (args.resume) {
    const ckpt = await loadCheckpoint(args.resume);
    await trainer.importState(ckpt.state);
    startStep = ckpt.state.step;
    position = ckpt.loader;
  }
  // Rank 0 tokenizes (and caches) first, so ranks never race to write the cache.
  if (!lead) await comm.barrier();
  const data = await openRankData({
    tokenizer: model.tokenizer,
    data: o.data,
    batch: o.batch,
    seqLen: model.seqLen,
    seed: o.seed,
    layout,
    position,
  });
  if (lead) await comm.barrier();
  const val = validationBatches(data.val, {
    batch: o.batch,
    seqLen: model.seqLen,
    maxBatches: o.evalBatches,
    layout,
  });

  const progress = new Progress({ total: o.steps, start: startStep, tty: args.tty });
  const say = (line: string) => verbose && progress.message(line);
  let metrics: MetricsLog | undefined;
  if (lead) {
    await Deno.mkdir(o.out, { recursive: true });
    metrics = await MetricsLog.open(`${o.out}/metrics.jsonl`, {
      resumeStep: args.resume ? startStep : undefined,
    });
  }
  say(
    `model ${o.preset} (${model.model}, ${(parameterCount(model) / 1e6).toFixed(2)}M params, ` +
      `${model.layers} layers × ${model.dim}) | ranks ${comm.world} = sp ${comm.sp} × dp ${comm.dp}` +
      ` (lasp ${args.train.laspMode}) | ${args.describeDevice ?? ""}`,
  );
  say(`data ${data.description}: ${data.train.length} train / ${data.val.length} val tokens`);
  say(
    `batch ${o.batch} × ${model.seqLen} tokens × ${o.gradAccum} accum | steps ${o.steps}` +
      (args.resume ? ` | resumed at step ${startStep} from ${args.resume}` : ""),
  );

  const result: RankResult = { startStep, steps: [], evals: [], checkpoints: [] };
  const elapsedBefore = metrics?.elapsed ?? 0;
  const began = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - began) / 1000;

  // The curve is rewritten at every validation too, so a run stopped midway still has one.
  const writeCurve = async () => {
    if (!metrics) return;
    const title = `${o.preset} ${model.model}, sp ${comm.sp} × dp ${comm.dp}, ` +
      `batch ${o.batch}×${model.seqLen}`;
    await Deno.writeTextFile(`${o.out}/loss.svg`, lossCurveSvg(metrics.curves(), { title }));
  };
  const evaluate = async (step: number) => {
    const valLoss = await trainer.evaluate(val);
    result.evals.push({ step, valLoss });
    await metrics?.append({
      type: "eval",
      step,
      valLoss,
      valPerplexity: Math.exp(valLoss),
      elapsed: elapsed(),
    });
    say(
      `step ${step}: validation loss ${valLoss.toFixed(4)}, perplexity ${
        Math.exp(valLoss).toFixed(2)
      }`,
    );
    await writeCurve();
  };
  const save = async (step: number) => {
    const state = await trainer.exportState(); // collective: every rank takes part
    if (lead) {
      const path = `${o.out}/${checkpointName(step)}`;
      await saveCheckpoint(path, {
        state,
        model,
        train: args.train,
        loader: data.loader.position,
        options: { ...o, resume: undefined, stopAt: undefined },
      });
      result.checkpoints.push(path);
      say(`step ${step}: checkpoint ${path}`);
    }
    await comm.barrier();
    return state;
  };

  const flag = args.interrupt ? new Int32Array(args.interrupt) : undefined;
  const interrupted = async () => {
    const mine = flag ? Atomics.load(flag, 0) : 0;
    if (comm.world === 1) return mine > 0;
    return (await comm.allReduce(Float32Array.of(mine)))[0] > 0; // every rank decides alike
  };
  let lastStep = o.stopAt ?? o.steps;
  for (let step = startStep + 1; step <= lastStep; step++) {
    const micro: MicroBatch[] = [];
    for (let a = 0; a < o.gradAccum; a++) micro.push(sliceMicroBatch(data.loader.next(), layout));
    const t0 = performance.now();
    const stats = await trainer.step(micro);
    const seconds = (performance.now() - t0) / 1000;
    result.steps.push(stats);
    const tokensPerSec = stats.tokens / seconds;
    await metrics?.append({
      type: "train",
      step: stats.step,
      loss: stats.loss,
      lr: stats.lr,
      gradNorm: stats.gradNorm,
      tokens: stats.tokens,
      tokensPerSec,
      elapsed: elapsed(),
    });
    if (verbose) progress.step({ step, loss: stats.loss, lr: stats.lr, tokensPerSec });
    if (!Number.isFinite(stats.loss)) {
      throw new Error(`Training diverged: loss ${stats.loss} at step ${step}`);
    }
    if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < o.steps) await evaluate(step);
    if (flag && step < lastStep && await interrupted()) {
      say(`interrupted after step ${step}: resume with --resume ${o.out}`);
      lastStep = step;
    }
    if (o.saveEvery > 0 && step % o.saveEvery === 0 && step < lastStep) await save(step);
  }
  const stopped = lastStep < o.steps;
  if (stopped && lastStep === o.stopAt) {
    say(`stopped after step ${lastStep} (--stop-at): resume with --resume ${o.out}`);
  }
  if (!stopped && lastStep > startStep) await evaluate(lastStep);
  const finalState = await save(lastStep);
  if (verbose) progress.finish();

  if (lead && metrics) {
    await writeCurve();
    metrics.close();
    say(`wrote ${o.out}/metrics.jsonl and ${o.out}/loss.svg`);
    if (!stopped && o.sampleTokens > 0 && args.sample) {
      result.sample = await sampleText(args.sample, finalState, data.tokenizer, o);
      say(
        `sample (${o.sampleTokens} tokens, temperature ${o.temperature}):\n` +
          printable(o.prompt + result.sample),
      );
    }
  }
  return result;
}

/** Control characters (a byte-level sample may hold any) shown as U+FFFD, not sent to the terminal. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "\ufffd");
}

async function sampleText(
  sample: Sampler,
  state: TrainerState,
  tokenizer: Tokenizer,
  o: TrainOptions,
): Promise<string> {
  const prompt = Array.from(tokenizer.encode(o.prompt));
  if (prompt.length === 0) {
    throw new Error(`Invalid --prompt "${o.prompt}": it encodes to no tokens`);
  }
  const ids = await sample(state.params, {
    prompt,
    maxTokens: o.sampleTokens,
    temperature: o.temperature,
    seed: o.seed,
  });
  // Embedding rows past the tokenizer's ids (vocabulary padding) have no text.
  return tokenizer.decode(ids.filter((id) => id < tokenizer.vocabSize));
}

/**
 * A rank's data: the token stream split into train and validation, the seeded resumable
 * loader of this rank's DP shard, and the cut of each batch to this rank's SP slice.
 *
 * The global batch of a micro-batch is B sequences; DP group g of D reads sequences
 * [g·B/D, (g+1)·B/D) of it (BatchLoader's sharding), and SP rank t of T keeps tokens
 * [t·N/T, (t+1)·N/T) of each. So the union over ranks is the same B × N tokens for every
 * D and T, and a run with one rank sees exactly the batches of a run with many.
 * @module
 */
import { type Batch, BatchLoader, evalBatches, inputsAndTargets } from "../data/loader.ts";
import type { LoaderPosition } from "../data/loader.ts";
import { loadTokens } from "../data/source.ts";
import { splitTokens, type TokenArray } from "../data/split.ts";
import { loadTokenizer, type Tokenizer } from "../data/tokenizer.ts";
import { sequenceRange, sliceSequence } from "../lasp/split.ts";
import type { TokenizerName } from "../model/config.ts";
import type { MicroBatch } from "../train/types.ts";

/** Where a rank sits in the DP × SP layout. */
export interface RankLayout {
  /** SP size T. */
  sp: number;
  /** This rank's sequence rank t. */
  spRank: number;
  /** DP size D. */
  dp: number;
  /** This rank's DP group g. */
  dpRank: number;
}

/** This rank's slice of a batch (its DP shard already): inputs/targets [B, N/T]. */
export function sliceMicroBatch(batch: Batch, layout: RankLayout): MicroBatch {
  const { inputs, targets } = inputsAndTargets(batch); // [B, N] each
  const shape = { outer: batch.batchSize, length: batch.seqLen, inner: 1 };
  const range = sequenceRange(batch.seqLen, layout.sp, layout.spRank);
  return {
    inputs: sliceSequence(inputs, shape, range), // [B, N/T]
    targets: sliceSequence(targets, shape, range), // [B, N/T]
    batch: batch.batchSize,
  };
}

/**
 * Validation micro-batches of this rank: the first `maxBatches` batches of B consecutive
 * windows of the validation tokens (the last one trimmed to a multiple of D), DP-sharded and
 * SP-sliced like training batches. Every run with the same B sees the same windows.
 */
export function validationBatches(
  val: TokenArray,
  options: { batch: number; seqLen: number; maxBatches: number; layout: RankLayout },
): MicroBatch[] {
  const { batch, seqLen: n, layout } = options;
  const out: MicroBatch[] = [];
  for (
    const full of evalBatches(val, { batchSize: batch, seqLen: n, maxBatches: options.maxBatches })
  ) {
    const per = Math.floor(full.batchSize / layout.dp); // rows of each DP group
    if (per === 0) break;
    const rows = full.tokens.subarray(
      layout.dpRank * per * (n + 1),
      (layout.dpRank + 1) * per * (n + 1),
    );
    out.push(sliceMicroBatch({ tokens: rows, batchSize: per, seqLen: n }, layout));
  }
  if (out.length === 0) {
    throw new Error(
      `The validation split has ${val.length} tokens: too few for ${layout.dp} window(s) of ${
        n + 1
      }`,
    );
  }
  return out;
}

/** What {@linkcode openRankData} returns. */
export interface RankData {
  tokenizer: Tokenizer;
  /** Where the tokens came from. */
  description: string;
  /** Training tokens. */
  train: TokenArray;
  /** Validation tokens. */
  val: TokenArray;
  /** This rank's loader (its DP shard of each global batch). */
  loader: BatchLoader;
}

/** Options of {@linkcode openRankData}. */
export interface RankDataOptions {
  tokenizer: TokenizerName;
  /** Text file or token shard; default the SOTU corpus. */
  data?: string;
  /** Global sequences per micro-batch (a multiple of D). */
  batch: number;
  seqLen: number;
  seed: number;
  layout: RankLayout;
  /** Continue here (from a checkpoint). */
  position?: LoaderPosition;
}

/** Loads the tokens and builds this rank's loader. */
export async function openRankData(options: RankDataOptions): Promise<RankData> {
  const tokenizer = await loadTokenizer(options.tokenizer);
  const source = await loadTokens(tokenizer, { data: options.data });
  const { train, val } = splitTokens(source.tokens);
  const { layout } = options;
  const loader = new BatchLoader(train, {
    batchSize: options.batch / layout.dp,
    seqLen: options.seqLen,
    seed: options.seed,
    shard: { index: layout.dpRank, count: layout.dp },
    position: options.position,
  });
  return { tokenizer, description: source.description, train, val, loader };
}

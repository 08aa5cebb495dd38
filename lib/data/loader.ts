/**
 * Batches of training windows `[B, N+1]` (inputs are the first N ids, targets the last N),
 * deterministic from a seed and resumable from a small saved position.
 *
 * Each epoch cuts the stream into windows of N+1 tokens that start every N tokens (the
 * target of one window's last position is the next window's first input), after an offset
 * drawn from the seed and the epoch, and visits them in a seeded random order. A step takes
 * the next `B · shards` windows of that order; data-parallel rank r of `shards` takes the
 * r-th group of B. An epoch's tail shorter than a step carries into the next epoch. The
 * position `{epoch, cursor}` (plus the seed) restores the exact continuation.
 * @module
 */
import { deriveSeed, Rng } from "../util/rng.ts";
import type { TokenArray } from "./split.ts";

/** Where the loader stands: saved in checkpoints. */
export interface LoaderPosition {
  /** Seed of the offsets and orders. */
  seed: number;
  /** Epochs completed. */
  epoch: number;
  /** Windows of this epoch's order already consumed (by all shards). */
  cursor: number;
}

/** Options of {@linkcode BatchLoader}. */
export interface BatchLoaderOptions {
  /** Sequences per batch on this rank (B). */
  batchSize: number;
  /** Tokens per sequence (N); windows hold N + 1. */
  seqLen: number;
  /** Seed of the window offsets and orders. Default 0. */
  seed?: number;
  /** Data-parallel sharding: this rank's index and the number of ranks. Default 0 of 1. */
  shard?: { index: number; count: number };
  /** Resume here (its seed wins over `seed`). */
  position?: LoaderPosition;
}

/** One batch: ids `[B, N+1]`, row-major. */
export interface Batch {
  /** Ids `[batchSize, seqLen + 1]`. */
  tokens: Uint32Array;
  /** Windows in this batch. */
  batchSize: number;
  /** N: each window holds N + 1 ids. */
  seqLen: number;
}

/** Seeded, resumable iterator over training batches. */
export class BatchLoader {
  /** Sequences per batch on this rank (B). */
  readonly batchSize: number;
  /** Tokens per sequence (N). */
  readonly seqLen: number;
  /** Seed of the window offsets and orders. */
  readonly seed: number;
  /** This rank's data-parallel shard. */
  readonly shard: { index: number; count: number };
  #epoch: number;
  #cursor: number;
  #order: { epoch: number; offset: number; windows: Uint32Array } | undefined;

  /** A loader over `tokens` (see {@linkcode BatchLoaderOptions}). */
  constructor(readonly tokens: TokenArray, options: BatchLoaderOptions) {
    const { batchSize, seqLen } = options;
    const shard = options.shard ?? { index: 0, count: 1 };
    const rules: [boolean, string][] = [
      [
        Number.isInteger(batchSize) && batchSize >= 1,
        `batchSize ${batchSize} must be a positive integer`,
      ],
      [Number.isInteger(seqLen) && seqLen >= 1, `seqLen ${seqLen} must be a positive integer`],
      [
        Number.isInteger(shard.count) && shard.count >= 1 && Number.isInteger(shard.index) &&
        shard.index >= 0 && shard.index < shard.count,
        `shard ${shard.index} of ${shard.count} must satisfy 0 ≤ index < count`,
      ],
      [
        tokens.length >= seqLen + 1,
        `${tokens.length} tokens are too few for one window of seqLen + 1 = ${seqLen + 1}`,
      ],
    ];
    for (const [ok, rule] of rules) if (!ok) throw new Error(`BatchLoader: ${rule}`);
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.shard = shard;
    const p = options.position;
    this.seed = p?.seed ?? options.seed ?? 0;
    this.#epoch = p?.epoch ?? 0;
    this.#cursor = p?.cursor ?? 0;
    if (
      !Number.isInteger(this.#epoch) || this.#epoch < 0 || !Number.isInteger(this.#cursor) ||
      this.#cursor < 0
    ) {
      throw new Error(`BatchLoader: invalid position ${JSON.stringify(p)}`);
    }
  }

  /** The position to save; a loader built with it continues identically. */
  get position(): LoaderPosition {
    return { seed: this.seed, epoch: this.#epoch, cursor: this.#cursor };
  }

  /** This epoch's window offset and order. */
  #epochOrder(): { offset: number; windows: Uint32Array } {
    if (this.#order?.epoch === this.#epoch) return this.#order;
    const n = this.seqLen, total = this.tokens.length;
    const rng = new Rng(deriveSeed(this.seed, this.#epoch));
    const offset = rng.int(Math.min(n, total - n)); // leaves ≥ 1 window
    const count = Math.floor((total - 1 - offset) / n);
    const windows = rng.shuffle(Uint32Array.from({ length: count }, (_, i) => i));
    this.#order = { epoch: this.#epoch, offset, windows };
    return this.#order;
  }

  /** The start of the next window in order (advancing across epochs). */
  #nextStart(): number {
    let order = this.#epochOrder();
    if (this.#cursor >= order.windows.length) {
      this.#epoch++;
      this.#cursor = 0;
      order = this.#epochOrder();
    }
    return order.offset + order.windows[this.#cursor++] * this.seqLen;
  }

  /** The next batch of this rank (all ranks advance by B · shards windows). */
  next(): Batch {
    const { batchSize: b, seqLen: n } = this;
    const out = new Uint32Array(b * (n + 1));
    for (let s = 0; s < this.shard.count; s++) {
      for (let i = 0; i < b; i++) {
        const start = this.#nextStart();
        if (s === this.shard.index) {
          out.set(this.tokens.subarray(start, start + n + 1), i * (n + 1));
        }
      }
    }
    return { tokens: out, batchSize: b, seqLen: n };
  }
}

/** Inputs `[B, N]` and targets `[B, N]` of a batch. */
export function inputsAndTargets(batch: Batch): { inputs: Uint32Array; targets: Uint32Array } {
  const { batchSize: b, seqLen: n, tokens } = batch;
  const inputs = new Uint32Array(b * n), targets = new Uint32Array(b * n);
  for (let i = 0; i < b; i++) {
    inputs.set(tokens.subarray(i * (n + 1), i * (n + 1) + n), i * n);
    targets.set(tokens.subarray(i * (n + 1) + 1, (i + 1) * (n + 1)), i * n);
  }
  return { inputs, targets };
}

/**
 * Validation batches: consecutive windows from the start of `tokens` (no randomness), at most
 * `maxBatches`; the last batch may hold fewer than B windows.
 */
export function* evalBatches(
  tokens: TokenArray,
  options: { batchSize: number; seqLen: number; maxBatches?: number },
): Generator<Batch> {
  const { batchSize, seqLen: n } = options;
  const windows = Math.floor((tokens.length - 1) / n);
  const limit = Math.min(Math.ceil(windows / batchSize), options.maxBatches ?? Infinity);
  for (let k = 0; k < limit; k++) {
    const b = Math.min(batchSize, windows - k * batchSize);
    const out = new Uint32Array(b * (n + 1));
    for (let i = 0; i < b; i++) {
      const start = (k * batchSize + i) * n;
      out.set(tokens.subarray(start, start + n + 1), i * (n + 1));
    }
    yield { tokens: out, batchSize: b, seqLen: n };
  }
}

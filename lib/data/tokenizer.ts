/**
 * Tokenizers: GPT-2's byte-level BPE (through js-tiktoken, whose ranks ship inside the npm
 * package, so it works offline once cached) and plain UTF-8 bytes (256 ids, for small
 * models that train on a CPU). Documents are joined with the tokenizer's separator: GPT-2's
 * `<|endoftext|>` (50256), or a blank line for bytes (no id is free for a special token).
 * @module
 */
import { importGpt2Bpe } from "../deps.ts";
import type { TokenizerName } from "../model/config.ts";

/** Text ↔ token ids. */
export interface Tokenizer {
  /** Name recorded in token shards. */
  readonly name: TokenizerName;
  /** Number of distinct ids. */
  readonly vocabSize: number;
  /** Ids of `text` (special-token text is encoded as plain text). */
  encode(text: string): Uint32Array;
  /** Text of `ids`. */
  decode(ids: ArrayLike<number>): string;
  /** Ids placed between documents. */
  readonly separator: Uint32Array;
}

/** UTF-8 bytes as ids. */
export const bytesTokenizer: Tokenizer = {
  name: "bytes",
  vocabSize: 256,
  encode: (text) => Uint32Array.from(new TextEncoder().encode(text)),
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>)),
  separator: Uint32Array.of(10, 10),
};

/** GPT-2's end-of-text id. */
export const GPT2_EOT = 50256;

let gpt2: Promise<Tokenizer> | undefined;
/** GPT-2 BPE (50257 ids), loaded once per process. */
export function gpt2Tokenizer(): Promise<Tokenizer> {
  gpt2 ??= importGpt2Bpe().then(({ encoder }) => ({
    name: "gpt2",
    vocabSize: 50257,
    encode: (text: string) => Uint32Array.from(encoder.encode(text, [], [])), // specials as text
    decode: (ids: ArrayLike<number>) => encoder.decode(Array.from(ids)),
    separator: Uint32Array.of(GPT2_EOT),
  }));
  return gpt2;
}

/** The tokenizer called `name`. */
export function loadTokenizer(name: TokenizerName): Promise<Tokenizer> {
  if (name === "gpt2") return gpt2Tokenizer();
  if (name === "bytes") return Promise.resolve(bytesTokenizer);
  throw new Error(`Unknown tokenizer "${name}": must be "gpt2" or "bytes"`);
}

/** Ids of the documents, each followed by the separator (fixed order: the caller's). */
export function encodeDocuments(tokenizer: Tokenizer, documents: readonly string[]): Uint32Array {
  const parts = documents.map((d) => tokenizer.encode(d));
  const total = parts.reduce((n, p) => n + p.length + tokenizer.separator.length, 0);
  const out = new Uint32Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    out.set(tokenizer.separator, offset + p.length);
    offset += p.length + tokenizer.separator.length;
  }
  return out;
}

/**
 * Token streams for training: the default corpus or a user's `--data` file, tokenized once
 * and cached as a token shard.
 *
 * `--data PATH`: a file that starts with the shard magic is read as a token shard (its
 * tokenizer must be the model's); a `.tok` file without the magic is rejected; anything else
 * must be UTF-8 text, which is tokenized as one document and cached under its SHA-256.
 * @module
 */
import type { Tokenizer } from "./tokenizer.ts";
import { encodeDocuments } from "./tokenizer.ts";
import { decodeShard, hasShardMagic, readShard, writeShard } from "./shard.ts";
import { cacheDir } from "./cache.ts";
import { SOTU_NAME, sotuDocuments } from "./sotu.ts";

/** Bumped when tokenization or the corpus order changes: old cache files are then ignored. */
const CACHE_VERSION = 1;

/** A token stream and where it came from. */
export interface TokenSource {
  /** The token ids. */
  tokens: Uint16Array | Uint32Array;
  /** Human-readable origin, e.g. "sotu (cached …/sotu-gpt2-v1.tok)". */
  description: string;
}

/** Options of {@linkcode loadTokens}. */
export interface LoadTokensOptions {
  /** A text file or token shard; default: the SOTU corpus. */
  data?: string;
  /** Cache directory; default {@linkcode cacheDir}(). */
  cache?: string;
}

function checkTokenizer(path: string, shardTokenizer: string, tokenizer: Tokenizer): void {
  if (shardTokenizer !== tokenizer.name) {
    throw new Error(
      `Token shard ${path} was made with tokenizer "${shardTokenizer}" but the model uses "${tokenizer.name}"`,
    );
  }
}

/** Reads a cached shard, or makes it with `make` and writes it. */
async function cached(
  path: string,
  tokenizer: Tokenizer,
  make: () => Promise<Uint32Array>,
): Promise<{ tokens: Uint16Array | Uint32Array; hit: boolean }> {
  try {
    const shard = await readShard(path);
    checkTokenizer(path, shard.tokenizer, tokenizer);
    return { tokens: shard.tokens, hit: true };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const tokens = await make();
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await writeShard(path, tokens, { vocabSize: tokenizer.vocabSize, tokenizer: tokenizer.name });
  return { tokens, hit: false };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The training token stream (see module doc). */
export async function loadTokens(
  tokenizer: Tokenizer,
  options: LoadTokensOptions = {},
): Promise<TokenSource> {
  const dir = options.cache ?? cacheDir();
  if (options.data === undefined) {
    const path = `${dir}/${SOTU_NAME}-${tokenizer.name}-v${CACHE_VERSION}.tok`;
    const { tokens, hit } = await cached(
      path,
      tokenizer,
      async () => encodeDocuments(tokenizer, await sotuDocuments()),
    );
    return { tokens, description: `${SOTU_NAME} (${hit ? "cached" : "tokenized into"} ${path})` };
  }
  const path = options.data;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`Cannot read --data ${path}: ${(e as Error).message}`);
  }
  if (hasShardMagic(bytes) || path.endsWith(".tok")) {
    const shard = decodeShard(bytes, path);
    checkTokenizer(path, shard.tokenizer, tokenizer);
    return { tokens: shard.tokens, description: `token shard ${path}` };
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`--data ${path} is neither a LASP token shard nor UTF-8 text`);
  }
  const hash = (await sha256Hex(bytes)).slice(0, 16);
  const cachePath = `${dir}/text-${hash}-${tokenizer.name}-v${CACHE_VERSION}.tok`;
  const { tokens, hit } = await cached(
    cachePath,
    tokenizer,
    () => Promise.resolve(encodeDocuments(tokenizer, [text])),
  );
  return { tokens, description: `${path} (${hit ? "cached" : "tokenized into"} ${cachePath})` };
}

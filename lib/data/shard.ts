/**
 * Token shard files: a 64-byte header, then the token ids little-endian.
 *
 *     offset  size  field
 *     0       8     magic "LASPTOK\0"
 *     8       4     version (u32, 1)
 *     12      4     dtype (u32: 2 = u16, 4 = u32 — the bytes per token)
 *     16      8     token count (u64)
 *     24      4     vocabulary size (u32)
 *     28      32    tokenizer name (ASCII, NUL-padded), e.g. "gpt2" or "bytes"
 *     60      4     reserved (0)
 *     64      …     tokens
 *
 * u16 is used whenever the vocabulary fits (GPT-2's 50257 does), halving the file.
 * @module
 */

/** The 8 magic bytes at the start of every shard. */
export const SHARD_MAGIC = "LASPTOK\0";
/** Format version written and accepted. */
export const SHARD_VERSION = 1;
/** Bytes before the tokens. */
export const SHARD_HEADER_BYTES = 64;

/** What the header records. */
export interface ShardHeader {
  /** Format version. */
  version: number;
  /** Bytes per token: 2 (u16) or 4 (u32). */
  bytesPerToken: 2 | 4;
  /** Number of tokens. */
  tokenCount: number;
  /** Every id is below this. */
  vocabSize: number;
  /** Name of the tokenizer that made the ids. */
  tokenizer: string;
}

/** Header plus the token ids. */
export interface TokenShard extends ShardHeader {
  /** The ids. */
  tokens: Uint16Array | Uint32Array;
}

/** True when `bytes` begin with the shard magic. */
export function hasShardMagic(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== SHARD_MAGIC.charCodeAt(i)) return false;
  return true;
}

/** The file bytes of a shard holding `tokens` (each must be < `vocabSize`). */
export function encodeShard(
  tokens: ArrayLike<number>,
  options: { vocabSize: number; tokenizer: string },
): Uint8Array {
  const { vocabSize, tokenizer } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 2 ** 32) {
    throw new Error(`Invalid shard vocabSize ${vocabSize}: must be an integer in [1, 2^32]`);
  }
  if (!/^[\x20-\x7e]{1,32}$/.test(tokenizer)) {
    throw new Error(
      `Invalid shard tokenizer name "${tokenizer}": 1 to 32 printable ASCII characters`,
    );
  }
  const bytesPerToken = vocabSize <= 65536 ? 2 : 4;
  const out = new Uint8Array(SHARD_HEADER_BYTES + tokens.length * bytesPerToken);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = SHARD_MAGIC.charCodeAt(i);
  view.setUint32(8, SHARD_VERSION, true);
  view.setUint32(12, bytesPerToken, true);
  view.setBigUint64(16, BigInt(tokens.length), true);
  view.setUint32(24, vocabSize % 2 ** 32, true); // 2^32 is stored as 0
  for (let i = 0; i < tokenizer.length; i++) out[28 + i] = tokenizer.charCodeAt(i);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new Error(`Token ${t} at position ${i} is outside the vocabulary [0, ${vocabSize})`);
    }
    if (bytesPerToken === 2) view.setUint16(SHARD_HEADER_BYTES + 2 * i, t, true);
    else view.setUint32(SHARD_HEADER_BYTES + 4 * i, t, true);
  }
  return out;
}

/** Parses shard bytes; `source` names the file in errors. */
export function decodeShard(bytes: Uint8Array, source = "token shard"): TokenShard {
  const fail = (why: string): never => {
    throw new Error(`${source} is not a valid LASP token shard: ${why}`);
  };
  if (bytes.length < SHARD_HEADER_BYTES) {
    fail(`${bytes.length} bytes, shorter than the 64-byte header`);
  }
  if (!hasShardMagic(bytes)) {
    const found = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    fail(`bad magic ${found} (expected "LASPTOK\\0")`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== SHARD_VERSION) fail(`version ${version}, this reader supports ${SHARD_VERSION}`);
  const bytesPerToken = view.getUint32(12, true);
  if (bytesPerToken !== 2 && bytesPerToken !== 4) {
    fail(`dtype ${bytesPerToken}: must be 2 (u16) or 4 (u32)`);
  }
  const count = view.getBigUint64(16, true);
  const expected = BigInt(SHARD_HEADER_BYTES) + count * BigInt(bytesPerToken);
  if (expected !== BigInt(bytes.length)) {
    fail(`header says ${count} tokens (${expected} bytes) but the file has ${bytes.length} bytes`);
  }
  const vocabSize = view.getUint32(24, true) || 2 ** 32;
  const nameBytes = bytes.subarray(28, 60);
  const end = nameBytes.indexOf(0);
  const tokenizer = new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 32 : end));
  const tokenCount = Number(count);
  const data = bytes.slice(SHARD_HEADER_BYTES).buffer; // aligned copy
  const tokens = bytesPerToken === 2
    ? new Uint16Array(data, 0, tokenCount)
    : new Uint32Array(data, 0, tokenCount);
  if (!littleEndian()) fail("big-endian hosts are not supported");
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] >= vocabSize) {
      fail(`token ${tokens[i]} at position ${i} ≥ vocabulary size ${vocabSize}`);
    }
  }
  return {
    version,
    bytesPerToken: bytesPerToken as 2 | 4,
    tokenCount,
    vocabSize,
    tokenizer,
    tokens,
  };
}

function littleEndian(): boolean {
  return new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
}

/** Writes a shard atomically (temporary file, then rename). */
export async function writeShard(
  path: string,
  tokens: ArrayLike<number>,
  options: { vocabSize: number; tokenizer: string },
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, encodeShard(tokens, options));
  await Deno.rename(tmp, path);
}

/** Reads and validates a shard file. */
export async function readShard(path: string): Promise<TokenShard> {
  return decodeShard(await Deno.readFile(path), path);
}

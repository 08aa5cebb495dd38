/**
 * The safetensors format (https://github.com/huggingface/safetensors), written and read
 * without dependencies:
 *
 *     [u64 little-endian N] [N bytes of JSON header, space-padded to a multiple of 8] [data]
 *
 * The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
 * (byte offsets into the data section) and may hold `"__metadata__"`, a string→string map.
 * Tensors are laid out like the reference implementation lays them out (by dtype, widest
 * first, then by name), so for the same tensors and at most one metadata key the bytes equal
 * those of Python's `safetensors.numpy.save_file`. Files are written and read tensor by
 * tensor through a file handle: a checkpoint need not fit in memory twice.
 * @module
 */

/** Element types of the format that this module reads and writes. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/** Host arrays for tensor data (BF16 and BOOL as raw Uint16Array / Uint8Array). */
export type SafetensorsArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Float16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/** One tensor: dtype, shape and row-major data. */
export interface SafetensorsTensor {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Dimensions, row-major; `[]` for a scalar. */
  shape: readonly number[];
  /** The elements (a typed array of the dtype's width). */
  data: SafetensorsArray;
}

/** Byte size and array constructor per dtype, in the reference implementation's dtype order. */
const DTYPES: Record<
  SafetensorsDType,
  { bytes: number; rank: number; make: (b: ArrayBuffer, n: number) => SafetensorsArray }
> = {
  BOOL: { bytes: 1, rank: 0, make: (b, n) => new Uint8Array(b, 0, n) },
  U8: { bytes: 1, rank: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  I8: { bytes: 1, rank: 2, make: (b, n) => new Int8Array(b, 0, n) },
  I16: { bytes: 2, rank: 3, make: (b, n) => new Int16Array(b, 0, n) },
  U16: { bytes: 2, rank: 4, make: (b, n) => new Uint16Array(b, 0, n) },
  F16: { bytes: 2, rank: 5, make: (b, n) => new Float16Array(b, 0, n) },
  BF16: { bytes: 2, rank: 6, make: (b, n) => new Uint16Array(b, 0, n) },
  I32: { bytes: 4, rank: 7, make: (b, n) => new Int32Array(b, 0, n) },
  U32: { bytes: 4, rank: 8, make: (b, n) => new Uint32Array(b, 0, n) },
  F32: { bytes: 4, rank: 9, make: (b, n) => new Float32Array(b, 0, n) },
  F64: { bytes: 8, rank: 10, make: (b, n) => new Float64Array(b, 0, n) },
  I64: { bytes: 8, rank: 11, make: (b, n) => new BigInt64Array(b, 0, n) },
  U64: { bytes: 8, rank: 12, make: (b, n) => new BigUint64Array(b, 0, n) },
};

/** Largest header accepted when reading (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

function elementCount(name: string, shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`safetensors: tensor "${name}" has invalid shape [${shape.join(", ")}]`);
    }
    n *= d;
  }
  return n;
}

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.hasOwn(DTYPES, value);
}

/** Header entry of one tensor after layout. */
interface Placed {
  name: string;
  tensor: SafetensorsTensor;
  begin: number;
  end: number;
}

/** Orders the tensors, assigns data offsets and builds the padded header bytes. */
function layout(
  tensors: Record<string, SafetensorsTensor>,
  metadata: Record<string, string> | undefined,
): { header: Uint8Array; placed: Placed[]; dataBytes: number } {
  const names = Object.keys(tensors);
  if (names.includes(METADATA_KEY)) {
    throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
  }
  for (const name of names) {
    const t = tensors[name];
    if (!isDType(t.dtype)) {
      throw new Error(`safetensors: tensor "${name}" has unknown dtype ${t.dtype}`);
    }
    const n = elementCount(name, t.shape);
    if (t.data.byteLength !== n * DTYPES[t.dtype].bytes) {
      throw new Error(
        `safetensors: tensor "${name}" ${t.dtype} [${t.shape.join(", ")}] needs ${
          n * DTYPES[t.dtype].bytes
        } bytes of data, got ${t.data.byteLength}`,
      );
    }
  }
  names.sort((a, b) => {
    const r = DTYPES[tensors[b].dtype].rank - DTYPES[tensors[a].dtype].rank;
    return r !== 0 ? r : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const sorted: Record<string, string> = {};
    for (const key of Object.keys(metadata).sort()) {
      if (typeof metadata[key] !== "string") {
        throw new Error(
          `safetensors: metadata "${key}" must be a string, got ${typeof metadata[key]}`,
        );
      }
      sorted[key] = metadata[key];
    }
    header[METADATA_KEY] = sorted;
  }
  const placed: Placed[] = [];
  let offset = 0;
  for (const name of names) {
    const tensor = tensors[name];
    const begin = offset;
    offset += tensor.data.byteLength;
    placed.push({ name, tensor, begin, end: offset });
    header[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [begin, offset] };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { header: bytes, placed, dataBytes: offset };
}

function dataBytes(t: SafetensorsTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The complete file bytes of `tensors` (for small files; see {@linkcode writeSafetensors}). */
export function encodeSafetensors(
  tensors: Record<string, SafetensorsTensor>,
  options: { metadata?: Record<string, string> } = {},
): Uint8Array {
  const { header, placed, dataBytes: total } = layout(tensors, options.metadata);
  const out = new Uint8Array(header.length + total);
  out.set(header);
  for (const p of placed) out.set(dataBytes(p.tensor), header.length + p.begin);
  return out;
}

/** Writes `tensors` to `path` tensor by tensor (atomically: a temporary file is renamed). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, SafetensorsTensor>,
  options: { metadata?: Record<string, string> } = {},
): Promise<void> {
  const { header, placed } = layout(tensors, options.metadata);
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, header);
    for (const p of placed) await writeAll(file, dataBytes(p.tensor));
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

/** Header of a safetensors file: tensor entries (by name) and metadata. */
export interface SafetensorsHeader {
  /** Entries by name: dtype, shape and byte range within the data section. */
  tensors: Map<string, { dtype: SafetensorsDType; shape: number[]; begin: number; end: number }>;
  /** The `__metadata__` map (empty when absent). */
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file. */
  dataOffset: number;
}

/** Parses and validates the header; `fileBytes` is the total file size. */
export function parseSafetensorsHeader(
  prefix: Uint8Array,
  fileBytes: number,
  source = "safetensors data",
): SafetensorsHeader {
  const fail = (why: string): never => {
    throw new Error(`${source} is not a valid safetensors file: ${why}`);
  };
  if (prefix.length < 8) fail(`it has ${prefix.length} bytes, fewer than the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, fileBytes - 8)) || n < 2n) {
    fail(`header length ${n} does not fit a file of ${fileBytes} bytes`);
  }
  const length = Number(n);
  if (prefix.length < 8 + length) {
    fail(`header needs ${length} bytes, only ${prefix.length - 8} read`);
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(prefix.subarray(8, 8 + length)),
    );
  } catch (e) {
    fail(`header is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const entries = header as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const raw = entries[METADATA_KEY];
  if (raw !== undefined) {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      fail(`${METADATA_KEY} is not an object`);
    }
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v !== "string") fail(`${METADATA_KEY}.${k} is not a string`);
      metadata[k] = v as string;
    }
  }
  const tensors: SafetensorsHeader["tensors"] = new Map();
  const dataLength = fileBytes - 8 - length;
  for (const [name, value] of Object.entries(entries)) {
    if (name === METADATA_KEY) continue;
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(info?.dtype)) {
      fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(info?.dtype)}`);
    }
    const dtype = info.dtype as SafetensorsDType;
    if (!Array.isArray(info.shape)) fail(`tensor "${name}" has no shape array`);
    const shape = info.shape as number[];
    const offsets = info.data_offsets as number[];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isSafeInteger)) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets;
    const bytes = elementCount(name, shape) * DTYPES[dtype].bytes;
    if (begin < 0 || end - begin !== bytes || end > dataLength) {
      fail(
        `tensor "${name}" ${dtype} [${
          shape.join(", ")
        }] has data_offsets [${begin}, ${end}], expected ${bytes} bytes inside ${dataLength}`,
      );
    }
    tensors.set(name, { dtype, shape, begin, end });
  }
  // The reference implementation requires the tensors to tile the data section exactly.
  const spans = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  let cursor = 0;
  for (const s of spans) {
    if (s.begin !== cursor) fail(`data_offsets leave a gap or overlap at byte ${cursor}`);
    cursor = s.end;
  }
  if (cursor !== dataLength) fail(`tensors cover ${cursor} of ${dataLength} data bytes`);
  return { tensors, metadata, dataOffset: 8 + length };
}

function toArray(dtype: SafetensorsDType, bytes: Uint8Array): SafetensorsArray {
  const copy = bytes.slice().buffer; // aligned, owned copy
  return DTYPES[dtype].make(copy, bytes.byteLength / DTYPES[dtype].bytes);
}

/** Parses complete file bytes. */
export function decodeSafetensors(
  bytes: Uint8Array,
): { tensors: Map<string, SafetensorsTensor>; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(bytes, bytes.length);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, e] of header.tensors) {
    const data = bytes.subarray(header.dataOffset + e.begin, header.dataOffset + e.end);
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data: toArray(e.dtype, data) });
  }
  return { tensors, metadata: header.metadata };
}

/** An open safetensors file whose tensors are read one at a time. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private readonly file: Deno.FsFile,
  ) {}

  /** Opens `path` and reads its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const lengthBytes = await readExactly(file, 0, Math.min(8, size));
      let total = 8;
      if (lengthBytes.length === 8) {
        const n = new DataView(lengthBytes.buffer).getBigUint64(0, true);
        if (n <= BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) total += Number(n);
      }
      const prefix = await readExactly(file, 0, Math.min(total, size));
      return new SafetensorsFile(path, parseSafetensorsHeader(prefix, size, path), file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Tensor names in data order. */
  get names(): string[] {
    return [...this.header.tensors.entries()].sort((a, b) => a[1].begin - b[1].begin).map(([n]) =>
      n
    );
  }

  /** Reads one tensor; throws naming the file and the missing tensor. */
  async read(name: string): Promise<SafetensorsTensor> {
    const e = this.header.tensors.get(name);
    if (!e) throw new Error(`${this.path} has no tensor "${name}"`);
    const bytes = await readExactly(this.file, this.header.dataOffset + e.begin, e.end - e.begin);
    return { dtype: e.dtype, shape: e.shape, data: toArray(e.dtype, bytes) };
  }

  /** Closes the file handle. */
  close(): void {
    this.file.close();
  }
}

async function readExactly(
  file: Deno.FsFile,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  for (let done = 0; done < length;) {
    const n = await file.read(out.subarray(done));
    if (n === null) throw new Error(`Unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return out;
}

/**
 * Binary frames of the WebSocket transport. Each frame is one WebSocket message: a 64-byte
 * little-endian header, then one part of a payload. Payloads are split into parts well below
 * 16 MiB (Deno closes a connection on a message of 64 MiB or more).
 *
 * | bytes | field |
 * |---|---|
 * | 0–3 | magic "LASP" |
 * | 4–5 | version |
 * | 6 | dtype (1 = f32) |
 * | 7 | number of shape dimensions (0–4) |
 * | 8–11 | run id hash (FNV-1a of the run id) |
 * | 12–15, 16–19 | source, destination rank |
 * | 20–23, 24–27, 28–31 | tag: step, layer, direction |
 * | 32–35, 36–39 | part index, part count |
 * | 40–47 | payload byte length (all parts; u64) |
 * | 48–63 | shape, 4 × u32 |
 * @module
 */
import type { Tag } from "../transport.ts";

/** "LASP" read as a little-endian u32. */
export const FRAME_MAGIC = 0x5053414c;
/** Frame format version; both ends must agree. */
export const FRAME_VERSION = 1;
/** Header size in bytes. */
export const HEADER_BYTES = 64;
/** Default bytes of payload per frame: 8 MiB. */
export const DEFAULT_PART_BYTES = 8 << 20;
/** Largest allowed payload bytes per frame (frames stay below 16 MiB). */
export const MAX_PART_BYTES = (16 << 20) - HEADER_BYTES - 4;
const DTYPE_F32 = 1;
const MAX_DIMS = 4;

/** Decoded frame header. */
export interface FrameHeader {
  runHash: number;
  src: number;
  dst: number;
  tag: Tag;
  part: number;
  parts: number;
  /** Payload bytes over all parts. */
  totalBytes: number;
  shape: number[];
}

/** 32-bit FNV-1a hash of the UTF-8 bytes of a run id. */
export function runIdHash(runId: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(runId)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Number of frames a payload of `bytes` needs with `partBytes` per frame (at least one). */
export function partCount(bytes: number, partBytes: number): number {
  return Math.max(1, Math.ceil(bytes / partBytes));
}

/**
 * The header of frame `part` of `payload`, and the part's bytes (a view): sent together, in
 * this order, as one WebSocket message.
 */
export function encodeFrameParts(
  header: Omit<FrameHeader, "part" | "parts" | "totalBytes">,
  payload: Uint8Array,
  part: number,
  partBytes: number,
): [Uint8Array, Uint8Array] {
  const parts = partCount(payload.byteLength, partBytes);
  const start = part * partBytes, end = Math.min(payload.byteLength, start + partBytes);
  if (header.shape.length > MAX_DIMS) {
    throw new Error(`Cannot frame a payload of ${header.shape.length} dimensions: at most 4`);
  }
  const head = new Uint8Array(HEADER_BYTES);
  const view = new DataView(head.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint16(4, FRAME_VERSION, true);
  view.setUint8(6, DTYPE_F32);
  view.setUint8(7, header.shape.length);
  view.setUint32(8, header.runHash, true);
  view.setUint32(12, header.src, true);
  view.setUint32(16, header.dst, true);
  view.setUint32(20, header.tag.step, true);
  view.setUint32(24, header.tag.layer, true);
  view.setUint32(28, header.tag.dir, true);
  view.setUint32(32, part, true);
  view.setUint32(36, parts, true);
  view.setBigUint64(40, BigInt(payload.byteLength), true);
  header.shape.forEach((d, i) => view.setUint32(48 + 4 * i, d, true));
  return [head, payload.subarray(start, end)];
}

/** Frame `part` of `payload` as one buffer (a copy; the transport sends the parts instead). */
export function encodeFrame(
  header: Omit<FrameHeader, "part" | "parts" | "totalBytes">,
  payload: Uint8Array,
  part: number,
  partBytes: number,
): ArrayBuffer {
  const [head, body] = encodeFrameParts(header, payload, part, partBytes);
  const frame = new Uint8Array(HEADER_BYTES + body.byteLength);
  frame.set(head);
  frame.set(body, HEADER_BYTES);
  return frame.buffer;
}

/** Reads and validates a frame's header; throws a one-line reason for a frame to reject. */
export function decodeHeader(frame: ArrayBuffer, runHash: number): FrameHeader {
  if (frame.byteLength < HEADER_BYTES) {
    throw new Error(
      `frame of ${frame.byteLength} bytes is shorter than the ${HEADER_BYTES}-byte header`,
    );
  }
  const view = new DataView(frame);
  const magic = view.getUint32(0, true);
  if (magic !== FRAME_MAGIC) {
    throw new Error(
      `bad frame magic 0x${magic.toString(16)} (expected 0x${FRAME_MAGIC.toString(16)})`,
    );
  }
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) {
    throw new Error(
      `frame version ${version} is not supported (this build speaks ${FRAME_VERSION})`,
    );
  }
  const dtype = view.getUint8(6), ndim = view.getUint8(7);
  if (dtype !== DTYPE_F32) throw new Error(`frame dtype ${dtype} is not f32 (1)`);
  if (ndim > MAX_DIMS) throw new Error(`frame has ${ndim} shape dimensions: at most 4`);
  const frameRun = view.getUint32(8, true);
  if (frameRun !== runHash) {
    throw new Error(
      `frame carries run id hash 0x${frameRun.toString(16)}, this run's is 0x${
        runHash.toString(16)
      } ` +
        `(a rank of another run?)`,
    );
  }
  const header: FrameHeader = {
    runHash: frameRun,
    src: view.getUint32(12, true),
    dst: view.getUint32(16, true),
    tag: {
      step: view.getUint32(20, true),
      layer: view.getUint32(24, true),
      dir: view.getUint32(28, true),
    },
    part: view.getUint32(32, true),
    parts: view.getUint32(36, true),
    totalBytes: Number(view.getBigUint64(40, true)),
    shape: Array.from({ length: ndim }, (_, i) => view.getUint32(48 + 4 * i, true)),
  };
  if (header.part >= header.parts || header.totalBytes % 4 !== 0) {
    throw new Error(
      `frame part ${header.part} of ${header.parts}, ${header.totalBytes} payload bytes: inconsistent`,
    );
  }
  const elements = header.shape.reduce((a, b) => a * b, 1);
  if (elements * 4 !== header.totalBytes) {
    throw new Error(
      `frame shape [${header.shape.join(", ")}] does not match ${header.totalBytes} payload bytes`,
    );
  }
  return header;
}

/** Reassembles the parts of one message from one peer (parts arrive in order on a socket). */
export class Reassembly {
  #header: FrameHeader | undefined;
  #bytes: Uint8Array | undefined;
  #filled = 0;

  /** Adds a frame; returns the finished payload and header when this was the last part. */
  add(
    header: FrameHeader,
    frame: ArrayBuffer,
  ): { header: FrameHeader; data: Float32Array } | undefined {
    const body = new Uint8Array(frame, HEADER_BYTES);
    if (header.part === 0) {
      if (this.#header) {
        throw new Error(`a new message began before part ${this.#header.part + 1} of the last one`);
      }
      if (header.parts === 1) {
        if (body.byteLength !== header.totalBytes) {
          throw new Error(
            `frame holds ${body.byteLength} payload bytes, header says ${header.totalBytes}`,
          );
        }
        // single part: view the frame's own buffer (4-aligned after the 64-byte header)
        return { header, data: new Float32Array(frame, HEADER_BYTES, header.totalBytes / 4) };
      }
      this.#header = header;
      this.#bytes = new Uint8Array(header.totalBytes);
      this.#filled = 0;
    } else if (!this.#header || header.part !== this.#header.part + 1) {
      throw new Error(`frame part ${header.part} arrived out of order`);
    } else if (!sameMessage(header, this.#header)) {
      throw new Error(`frame part ${header.part} does not belong to the message in progress`);
    }
    if (this.#filled + body.byteLength > this.#bytes!.byteLength) {
      throw new Error(`frame parts exceed the announced ${header.totalBytes} payload bytes`);
    }
    this.#bytes!.set(body, this.#filled);
    this.#filled += body.byteLength;
    this.#header = { ...this.#header, part: header.part };
    if (header.part < header.parts - 1) return undefined;
    const bytes = this.#bytes!;
    const first = this.#header;
    this.#header = undefined;
    this.#bytes = undefined;
    if (this.#filled !== bytes.byteLength) {
      throw new Error(`message ended after ${this.#filled} of ${bytes.byteLength} payload bytes`);
    }
    return { header: { ...first, part: 0 }, data: new Float32Array(bytes.buffer) };
  }
}

function sameMessage(a: FrameHeader, b: FrameHeader): boolean {
  return a.src === b.src && a.dst === b.dst && a.parts === b.parts &&
    a.totalBytes === b.totalBytes && a.tag.step === b.tag.step && a.tag.layer === b.tag.layer &&
    a.tag.dir === b.tag.dir;
}

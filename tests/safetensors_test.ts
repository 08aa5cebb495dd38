import { deepStrictEqual, throws } from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsFile,
  type SafetensorsTensor,
  writeSafetensors,
} from "../lib/checkpoint/safetensors.ts";

/** A file built by hand from the format description (what Python's save_file writes). */
function handBuiltFile(): Uint8Array {
  const json = '{"__metadata__":{"format":"pt"},' +
    '"c":{"dtype":"I64","shape":[1,1],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
    '"h":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},' +
    '"a":{"dtype":"U8","shape":[3],"data_offsets":[18,21]}}';
  const padded = json + " ".repeat((8 - (json.length % 8)) % 8); // 250 → 256 bytes
  const bytes = [
    ...[0x00, 0x01, 0, 0, 0, 0, 0, 0], // header length 256, u64 little-endian
    ...new TextEncoder().encode(padded),
    ...[5, 0, 0, 0, 0, 0, 0, 0], // c: I64 5
    ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], // b: F32 1, −2
    ...[0x00, 0x3e], // h: F16 1.5
    ...[1, 2, 3], // a: U8
  ];
  return Uint8Array.from(bytes);
}

const handTensors: Record<string, SafetensorsTensor> = {
  b: { dtype: "F32", shape: [2], data: Float32Array.of(1, -2) },
  a: { dtype: "U8", shape: [3], data: Uint8Array.of(1, 2, 3) },
  c: { dtype: "I64", shape: [1, 1], data: BigInt64Array.of(5n) },
  h: { dtype: "F16", shape: [1], data: Float16Array.of(1.5) },
};

Deno.test("safetensors encoding is byte-exact against a file built from the spec", () => {
  const expected = handBuiltFile();
  deepStrictEqual(expected.length, 8 + 256 + 21);
  deepStrictEqual(encodeSafetensors(handTensors, { metadata: { format: "pt" } }), expected);
  const { tensors, metadata } = decodeSafetensors(expected);
  deepStrictEqual(metadata, { format: "pt" });
  deepStrictEqual([...tensors.keys()].sort(), ["a", "b", "c", "h"]);
  for (const [name, t] of tensors) deepStrictEqual(t, handTensors[name]);
});

Deno.test("safetensors round trip through a file, every dtype, odd and empty shapes", async () => {
  const tensors: Record<string, SafetensorsTensor> = {
    "model.layers.0.attn.q.weight": {
      dtype: "F32",
      shape: [3, 5],
      data: Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1),
    },
    "scalar": { dtype: "F64", shape: [], data: Float64Array.of(Math.PI) },
    "empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    "half": { dtype: "F16", shape: [7], data: Float16Array.from([1, 2, 3, 4, 5, 6, 0.5]) },
    "bf16": { dtype: "BF16", shape: [3], data: Uint16Array.of(0x3f80, 0xc000, 0x7fc0) },
    "ids": { dtype: "U32", shape: [2, 2], data: Uint32Array.of(0, 1, 4294967295, 7) },
    "i32": { dtype: "I32", shape: [1], data: Int32Array.of(-5) },
    "i16": { dtype: "I16", shape: [1], data: Int16Array.of(-3) },
    "u16": { dtype: "U16", shape: [1], data: Uint16Array.of(65535) },
    "i8": { dtype: "I8", shape: [2], data: Int8Array.of(-128, 127) },
    "flags": { dtype: "BOOL", shape: [3], data: Uint8Array.of(1, 0, 1) },
    "step": { dtype: "I64", shape: [1], data: BigInt64Array.of(-(2n ** 40n)) },
    "rng": { dtype: "U64", shape: [2], data: BigUint64Array.of(2n ** 63n + 5n, 9n) },
  };
  const metadata = { format: "pt", config: JSON.stringify({ dim: 64 }) };
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ckpt.safetensors`;
    await writeSafetensors(path, tensors, { metadata });
    const bytes = await Deno.readFile(path);
    deepStrictEqual(bytes, encodeSafetensors(tensors, { metadata }));
    const file = await SafetensorsFile.open(path);
    try {
      deepStrictEqual(file.header.metadata, metadata);
      deepStrictEqual(new Set(file.names), new Set(Object.keys(tensors)));
      for (const name of Object.keys(tensors)) {
        deepStrictEqual(await file.read(name), tensors[name]);
      }
      await file.read("missing").then(
        () => {
          throw new Error("expected a missing-tensor error");
        },
        (e) => deepStrictEqual((e as Error).message, `${path} has no tensor "missing"`),
      );
    } finally {
      file.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors rejects malformed files and bad tensors with clear messages", () => {
  const good = handBuiltFile();
  const withLength = (n: number) => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    return b;
  };
  throws(() => decodeSafetensors(good.subarray(0, 5)), /fewer than the 8-byte header length/);
  throws(() => decodeSafetensors(withLength(1 << 20)), /header length 1048576 does not fit/);
  // Same-length edits of the header text, data bytes untouched.
  const patch = (from: string, to: string) => {
    const header = new TextDecoder().decode(good.subarray(8, 264)).replace(from, to);
    return Uint8Array.from([
      ...good.subarray(0, 8),
      ...new TextEncoder().encode(header),
      ...good.subarray(264),
    ]);
  };
  throws(
    () => decodeSafetensors(patch('"data_offsets":[18,21]', '"data_offsets":[19,22]')),
    /"a" U8 \[3\] has data_offsets \[19, 22\], expected 3 bytes inside 21/,
  );
  throws(
    () => decodeSafetensors(patch('"data_offsets":[16,18]', '"data_offsets":[17,19]')),
    /data_offsets leave a gap or overlap at byte 16/,
  );
  throws(() => decodeSafetensors(patch('"U8"', '"Q8"')), /"a" has unsupported dtype "Q8"/);
  throws(() => decodeSafetensors(patch('{"__', '[ "_')), /header is not UTF-8 JSON/);
  throws(
    () => decodeSafetensors(Uint8Array.from([...good, 0])),
    /tensors cover 21 of 22 data bytes/,
  );
  throws(
    () => encodeSafetensors({ w: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } }),
    /tensor "w" F32 \[2, 2\] needs 16 bytes of data, got 12/,
  );
  throws(
    () => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }),
    /"__metadata__" is reserved/,
  );
});

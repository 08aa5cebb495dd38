/**
 * JSON that keeps typed arrays bit-exact (NaN and ±Infinity included): how rank processes
 * receive their arguments and return their results over a command line and stdout.
 * @module
 */

const TYPED = { Float32Array, Float64Array, Int32Array, Uint32Array, Uint8Array } as const;
type TypedName = keyof typeof TYPED;

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text: string): ArrayBuffer {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
}

/** Serializes `value`; Float32/Float64/Int32/Uint32/Uint8Arrays travel as base64 bytes. */
export function encodeRankJson(value: unknown): string {
  return JSON.stringify(value, (_key, raw) => {
    for (const name of Object.keys(TYPED) as TypedName[]) {
      if (raw instanceof TYPED[name]) {
        const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
        return { $typed: name, base64: toBase64(bytes) };
      }
    }
    return raw;
  });
}

/** Inverse of {@linkcode encodeRankJson}. */
export function decodeRankJson(text: string): unknown {
  return JSON.parse(text, (_key, value) => {
    const v = value as { $typed?: string; base64?: string } | null;
    if (v && typeof v === "object" && typeof v.$typed === "string" && v.$typed in TYPED) {
      return new TYPED[v.$typed as TypedName](fromBase64(v.base64 ?? ""));
    }
    return value;
  });
}

/** What the parent passes as the single command-line argument (rank JSON). */
export interface ProcessRankSpec {
  module: string;
  exportName: string;
  args: unknown;
  sp?: number;
  timeoutMs?: number;
  partBytes?: number;
}

/** Prefix of the result line. */
export const RESULT_PREFIX = "RANK_RESULT ";
/** Prefix of the error line. */
export const ERROR_PREFIX = "RANK_ERROR ";

/**
 * The CommandQueue recording settings the host-overhead benchmark compares: everything off
 * (the recording before the fixes), each fix alone, and all of them (the default).
 * @module
 */
import type { RecordingOptions } from "../lib/gpu/commands.ts";

/** Settings by name, in table order. */
export const RECORDING_SETTINGS: Readonly<Record<string, RecordingOptions>> = {
  baseline: { uniformArena: false, bindGroupCache: false, sharedPasses: false },
  arena: { uniformArena: true, bindGroupCache: false, sharedPasses: false },
  cache: { uniformArena: false, bindGroupCache: true, sharedPasses: false },
  passes: { uniformArena: false, bindGroupCache: false, sharedPasses: true },
  all: { uniformArena: true, bindGroupCache: true, sharedPasses: true },
};

/** Names from a comma-separated list, each checked against {@linkcode RECORDING_SETTINGS}. */
export function parseSettings(list: string): string[] {
  const names = list.split(",").filter((s) => s.length > 0);
  for (const n of names) {
    if (!Object.hasOwn(RECORDING_SETTINGS, n)) {
      throw new Error(
        `Unknown recording setting "${n}": choose from ${
          Object.keys(RECORDING_SETTINGS).join(", ")
        }`,
      );
    }
  }
  if (names[0] !== "baseline") {
    throw new Error(
      `Settings "${list}" must start with baseline (the reference of the comparison)`,
    );
  }
  return names;
}

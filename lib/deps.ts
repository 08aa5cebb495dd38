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

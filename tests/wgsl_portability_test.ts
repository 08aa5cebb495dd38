// Dawn's WGSL compiler (Tint) is stricter than wgpu's (naga), and CI only has naga (lavapipe
// through the built-in implementation). Guard the two strictness rules that bit us on Dawn:
// float literals must be representable as f32, and no constant expression may fold to NaN.
import { ok } from "node:assert/strict";

const F32_MAX = 3.4028234663852886e38;
const dir = new URL("../shaders/", import.meta.url);

Deno.test("WGSL float literals fit f32 and no constant folds to NaN (Tint rejects both)", async () => {
  let files = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".wgsl")) continue;
    files++;
    const text = await Deno.readTextFile(new URL(entry.name, dir));
    const code = text.replace(/\/\/.*$/gm, "");
    for (const m of code.matchAll(/\b\d+(?:\.\d*)?e[+-]?\d+f?\b/gi)) {
      ok(Math.abs(parseFloat(m[0])) <= F32_MAX, `${entry.name}: literal ${m[0]} exceeds f32 max`);
    }
    ok(!/bitcast<f32>\(\s*0x7f[c-f]/i.test(code), `${entry.name}: constant NaN bitcast`);
  }
  ok(files >= 5, `read ${files} .wgsl files`);
});

// lib/deps.ts spells out full npm: specifiers (for URL imports); deno.json pins the same
// packages for local tooling. Every npm: specifier used by lib/ or shaders/ must match a pin.
import { ok } from "node:assert/strict";

Deno.test("npm specifiers in library code match the pins in deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const pins = new Set(
    Object.values(config.imports as Record<string, string>).map((s) =>
      s.match(/^npm:(@?[^@]+@[^/]+)/)?.[1]
    ),
  );
  const used: string[] = [];
  for (const dir of ["../lib/", "../shaders/"]) {
    for await (const path of walk(new URL(dir, import.meta.url))) {
      const text = await Deno.readTextFile(path);
      for (const m of text.matchAll(/"npm:(@?[^@"]+@[^/"]+)[^"]*"/g)) {
        used.push(`${m[1]} (${path.pathname})`);
      }
    }
  }
  ok(used.length > 0, "found npm specifiers");
  for (const u of used) ok(pins.has(u.split(" ")[0]), `${u} is not pinned in deno.json imports`);
});

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walk(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

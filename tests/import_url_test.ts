// Users import mod.ts from a URL: serve this checkout over http://127.0.0.1 and run a script,
// outside this project's config and import map, that imports it and runs kernels, including
// one whose WGSL is a plain file fetched relative to the module.
import { deepEqual, equal } from "node:assert/strict";

const root = new URL("../", import.meta.url);

Deno.test("mod.ts imported from an http:// URL runs kernels", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      const body = await Deno.readFile(new URL(`.${path}`, root));
      return new Response(body, { headers: { "content-type": "application/typescript" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/use_lasp.ts`;
    await Deno.writeTextFile(
      script,
      `import { downloadTensors, matmul, openDevice, siluForward, uploadTensor } from "http://127.0.0.1:${server.addr.port}/mod.ts";
const gpu = await openDevice({ gpu: "deno" });
const a = uploadTensor(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
const b = uploadTensor(gpu, [1, 0, 0, 1, 1, 1], [3, 2]);
const [c, s] = await downloadTensors(gpu, [await matmul(gpu, a, b), await siluForward(gpu, a)]);
console.log(JSON.stringify({ c: Array.from(c), s: Array.from(s, (v) => Math.round(v * 1e4) / 1e4) }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--no-lock", "--quiet", script],
      cwd: dir,
      env: { LASP_GPU: "deno", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    equal(out.code, 0, `script failed:\n${new TextDecoder().decode(out.stderr)}`);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    deepEqual(result.c, [4, 5, 10, 11]);
    deepEqual(result.s, [0.7311, 1.7616, 2.8577, 3.9281, 4.9665, 5.9852]);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { driPrimeAddress, launch } from "../lib/launch/launcher.ts";

const dir = await Deno.makeTempDir();
const envScript = `${dir}/print_env.ts`;
await Deno.writeTextFile(
  envScript,
  `import { launchEnvFrom } from "${new URL("../lib/launch/env.ts", import.meta.url)}";
console.log(JSON.stringify({ ...launchEnvFrom(), pci: Deno.env.get("DRI_PRIME") ?? null, arg: Deno.args[0], token: Deno.env.get("LASP_TOKEN"), runId: Deno.env.get("LASP_RUN_ID") }));`,
);
const failScript = `${dir}/fail.ts`;
await Deno.writeTextFile(
  failScript,
  `if (Deno.env.get("RANK") === "1") Deno.exit(3);
await new Promise((r) => setTimeout(r, 60_000)); // the launcher must stop this rank`,
);

Deno.test("launch starts N ranks with torchrun-style variables and one GPU each", async () => {
  const lines: { rank: number; line: string }[] = [];
  const code = await launch({
    nproc: 3,
    command: [envScript, "hello"],
    masterPort: 29611,
    gpus: ["pci-0000_07_00_0", "pci-0000_08_00_0"],
    onLine: (rank, line, stream) => stream === "stdout" && lines.push({ rank, line }),
  });
  equal(code, 0);
  const seen = lines.map(({ rank, line }) => ({ rank, ...JSON.parse(line) })).sort((a, b) =>
    a.rank - b.rank
  );
  equal(new Set(seen.map((s) => s.token)).size, 1, "one shared token per launch");
  equal(seen[0].token.length, 32);
  ok(seen[0].runId.startsWith("run-"));
  deepEqual(seen.map((s) => [s.rank, s.worldSize, s.localRank, s.masterPort, s.pci, s.arg]), [
    [0, 3, 0, 29611, "pci-0000_07_00_0", "hello"],
    [1, 3, 1, 29611, "pci-0000_08_00_0", "hello"],
    [2, 3, 2, 29611, "pci-0000_07_00_0", "hello"],
  ]);
});

Deno.test("a failing rank stops the others and its exit code is returned", async () => {
  const t0 = performance.now();
  const code = await launch({ nproc: 3, command: [failScript], gpus: [], onLine: () => {} });
  equal(code, 3);
  if (performance.now() - t0 > 30_000) throw new Error("the other ranks were not stopped");
});

Deno.test("launch rejects bad arguments; PCI ids convert for the device-select layer", async () => {
  await rejects(
    () => launch({ nproc: 0, command: [envScript] }),
    /Invalid --nproc 0: must be an integer ≥ 1/,
  );
  equal(driPrimeAddress("00000000:07:00.0"), "pci-0000_07_00_0");
  equal(driPrimeAddress("0000:C1:00.0"), "pci-0000_c1_00_0");
  throws(() => driPrimeAddress("gpu0"), /Cannot parse PCI bus id "gpu0"/);
});

Deno.test("SIGTERM to the launcher reaches the ranks, which finish their work", async () => {
  const script = `${dir}/graceful.ts`;
  await Deno.writeTextFile(
    script,
    `Deno.addSignalListener("SIGTERM", () => { console.log("stopping " + Deno.env.get("RANK")); Deno.exit(0); });
console.log("ready");
await new Promise((r) => setTimeout(r, 60_000));`,
  );
  const launcher = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli/launch.ts", import.meta.url).pathname,
      "--nproc",
      "2",
      script,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = launcher.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while ((text.match(/ready/g) ?? []).length < 2) text += (await reader.read()).value ?? "";
  launcher.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const status = await launcher.status;
  await launcher.stderr.cancel();
  equal(status.code, 0, text);
  ok(/\[rank 0\] stopping 0/.test(text) && /\[rank 1\] stopping 1/.test(text), text);
});

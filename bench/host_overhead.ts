// Host overhead of recording GPU work, per WebGPU implementation, and the CommandQueue
// recording fixes side by side (issue 5: Dawn's training step is 5× slower than the built-in
// implementation's although its kernels are as fast). Each implementation runs in its own
// process (one device per process); this one prints the tables.
//   (a) K trivial dispatches: host µs per dispatch split into writeBuffer / createBindGroup /
//       pass encoding / submit, the same through CommandQueue.dispatch under each recording
//       setting, and the round trips of onSubmittedWorkDone, a 4-byte readback and a wait
//       behind ≈ 20 ms of GPU work.
//   (b) a training step (bench/_train_setup.ts, as bench/train_step.ts): first every setting
//       must reproduce the baseline's losses and gradient norms on a small model; then wall
//       ms/step per setting, one traced step per setting (calls and host ms per WebGPU method,
//       ms awaiting GPU promises) and one step under GPU timestamps (busy, span, top kernels).
// Settings: baseline (one pass, one uniform buffer + writeBuffer and one bind group per
// dispatch: the recording before the fixes), arena, cache, passes (each fix alone), all.
// Usage:
//   deno run -A bench/host_overhead.ts [--gpu deno,dawn] [--variant 125m:2048:4] [--steps 2 per round]
//     [--validate tiny:128:4] [--settings baseline,arena,cache,passes,all] [--dispatches 2000]
//     [--repeats 3] [--round-trips 10] [--timeout 200 (s per implementation)]
import { openDevice } from "../mod.ts";
import { flag } from "./_timing.ts";
import { dispatchMicro, type MicroResult } from "./_dispatch_micro.ts";
import { stepOverhead, type StepResult } from "./_step_overhead.ts";
import { parseSettings, RECORDING_SETTINGS } from "./_recording_settings.ts";

/** What one implementation's process reports. */
interface ImplResult {
  implementation: string;
  adapter: string;
  micro?: MicroResult;
  step?: StepResult;
  error?: string;
}

const args = Deno.args;
const settings = parseSettings(flag(args, "settings", Object.keys(RECORDING_SETTINGS).join(",")));
const outPath = flag(args, "out", "");

/** One implementation: measures and writes its results to `path` (after each part). */
async function child(impl: "deno" | "dawn", path: string): Promise<void> {
  const gpu = await openDevice({ gpu: impl, nanFill: false });
  const result: ImplResult = { implementation: impl, adapter: gpu.adapterName };
  const save = () => Deno.writeTextFileSync(path, JSON.stringify(result));
  const log = (line: string) => console.error(`[${impl}] ${line}`);
  try {
    log(`device: ${gpu.adapterName}`);
    result.micro = await dispatchMicro(gpu, {
      dispatches: Number(flag(args, "dispatches", "2000")),
      repeats: Number(flag(args, "repeats", "3")),
      roundTrips: Number(flag(args, "round-trips", "10")),
    });
    save();
    log("micro-benchmark done");
    result.step = await stepOverhead(gpu, {
      variant: flag(args, "variant", "125m:2048:4"),
      validate: flag(args, "validate", "tiny:128:4"),
      settings,
      steps: Number(flag(args, "steps", "2")),
      log,
    });
  } catch (e) {
    result.error = (e as Error).message;
    log(`failed: ${result.error}`);
  }
  save();
  gpu.destroy();
}

async function parent(): Promise<void> {
  const impls = flag(args, "gpu", "deno,dawn").split(",");
  const timeoutS = Number(flag(args, "timeout", "200"));
  const results: ImplResult[] = [];
  for (const impl of impls) {
    if (impl !== "deno" && impl !== "dawn") {
      throw new Error(`Unknown implementation "${impl}" in --gpu: use deno, dawn or deno,dawn`);
    }
    const path = await Deno.makeTempFile({ suffix: ".json" });
    const passOn = args.filter((_, i) =>
      !["--gpu", "--out", "--timeout"].includes(args[i]) &&
      !["--gpu", "--out", "--timeout"].includes(args[i - 1])
    );
    const t0 = performance.now();
    const status = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--cached-only",
        new URL(import.meta.url).pathname,
        ...passOn,
        "--gpu",
        impl,
        "--out",
        path,
      ],
      stdout: "inherit",
      stderr: "inherit",
      signal: AbortSignal.timeout(timeoutS * 1000),
    }).output().catch((e) => ({ success: false, code: -1, error: String(e) }));
    const text = Deno.readTextFileSync(path);
    await Deno.remove(path);
    const r: ImplResult = text
      ? JSON.parse(text)
      : { implementation: impl, adapter: "?", error: "no result" };
    if (!status.success && !r.error) {
      r.error = `process ended with code ${status.code} after ${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s (timeout ${timeoutS} s)`;
    }
    results.push(r);
  }
  print(results);
}

const f = (x: number | undefined, digits = 1) =>
  x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(digits);

function table(header: string[], rows: string[][]): void {
  console.log(`| ${header.join(" | ")} |`);
  console.log(`|${header.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

function print(results: ImplResult[]): void {
  console.log(`\n## Host overhead (bench/host_overhead.ts)`);
  for (const r of results) {
    console.log(`- ${r.implementation}: ${r.adapter}${r.error ? ` — FAILED: ${r.error}` : ""}`);
  }
  const names = results.map((r) => r.implementation);
  const micro = results.filter((r) => r.micro);
  if (micro.length > 0) {
    const k = micro[0].micro!.dispatches;
    console.log(`\n### Host µs per dispatch (K = ${k} trivial dispatches, median of repeats)`);
    const labels = [...new Set(micro.flatMap((r) => Object.keys(r.micro!.hostUs)))];
    table(
      ["per dispatch", ...names],
      labels.map((l) => [l, ...results.map((r) => f(r.micro?.hostUs[l], 2))]),
    );
    console.log(`\n### Waits for the GPU, ms (median)`);
    const waits = [...new Set(micro.flatMap((r) => Object.keys(r.micro!.roundTripMs)))];
    table(
      ["wait", ...names],
      waits.map((l) => [l, ...results.map((r) => f(r.micro?.roundTripMs[l], 3))]),
    );
  }
  const steps = results.filter((r) => r.step);
  if (steps.length === 0) return;
  const v = steps[0].step!.variant;
  console.log(`\n### Training step ${v}: wall ms/step per recording setting (untraced)`);
  table(
    [
      "setting",
      ...names.flatMap((n) => [`${n} ms/step`, `${n} vs baseline`]),
      "validation (worst rel. diff)",
    ],
    settings.map((s) => [
      s,
      ...results.flatMap((r) => {
        const ms = r.step?.settings[s]?.wallMs, base = r.step?.settings[settings[0]]?.wallMs;
        return [f(ms), ms && base ? `${f(base / ms, 2)}×` : "—"];
      }),
      results.flatMap((r) => {
        const val = r.step?.validation[s];
        if (!val) return [];
        return [`${r.implementation} ${val.bitwise ? "bitwise" : val.worst.toExponential(1)}`];
      }).join(", "),
    ]),
  );
  for (const r of steps) printDetail(r);
}

function printDetail(r: ImplResult): void {
  const step = r.step!;
  const per = (s: string) => step.settings[s];
  console.log(`\n### ${r.implementation}: where one step's time goes, ms per step (calls)`);
  const methods = new Set(settings.flatMap((s) => Object.keys(per(s)?.methods ?? {})));
  const sumOf = (s: string, pick: (m: string) => boolean, field: "hostMs" | "awaitMs") =>
    Object.entries(per(s)?.methods ?? {}).filter(([m]) => pick(m)).reduce(
      (a, [, x]) => a + x[field],
      0,
    );
  const isApi = (m: string) => m.startsWith("GPU");
  const rows: string[][] = [
    ["wall, untraced", ...settings.map((s) => f(per(s)?.wallMs))],
    ["wall, traced step", ...settings.map((s) => f(per(s)?.tracedWallMs))],
    ["awaiting GPU promises", ...settings.map((s) => f(sumOf(s, isApi, "awaitMs")))],
    ["host inside WebGPU calls (Σ)", ...settings.map((s) => f(sumOf(s, isApi, "hostMs")))],
    [
      "host outside WebGPU calls (rest)",
      ...settings.map((s) =>
        f((per(s)?.tracedWallMs ?? NaN) - sumOf(s, isApi, "hostMs") - sumOf(s, isApi, "awaitMs"))
      ),
    ],
    [
      "bind groups created / cached",
      ...settings.map((s) =>
        `${per(s)?.bindGroups.misses ?? "—"} / ${per(s)?.bindGroups.hits ?? "—"}`
      ),
    ],
  ];
  const base = per(settings[0])?.methods ?? {};
  const ordered = [...methods].sort((a, b) => (base[b]?.hostMs ?? 0) - (base[a]?.hostMs ?? 0));
  for (const m of ordered) {
    rows.push([
      m,
      ...settings.map((s) => {
        const x = per(s)?.methods[m];
        if (!x) return "—";
        const wait = x.awaitMs > 0 ? ` +${f(x.awaitMs)} await` : "";
        return `${f(x.hostMs, 2)} (${x.calls})${wait}`;
      }),
    ]);
  }
  table(["", ...settings], rows);
  const g = step.gpu;
  if (g) {
    console.log(
      `GPU timestamps, one ${settings[0]} step: busy ${f(g.busyMs)} ms over a span of ${
        f(g.spanMs)
      } ms, ${g.dispatches} dispatches${g.untimed ? ` (+${g.untimed} untimed)` : ""}; top: ${
        g.top.map(([l, ms]) => `${l.split("|")[0].slice(0, 32)} ${f(ms)}`).join(", ")
      }`,
    );
  }
}

if (outPath) await child(flag(args, "gpu", "deno") as "deno" | "dawn", outPath);
else await parent();

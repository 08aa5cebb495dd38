/**
 * The training CLI end to end on the tiny model (CPU-sized: batch 4 × 64 tokens, a few
 * steps): the loss falls and every output is written; SP and DP layouts give the single-rank
 * losses; an interrupted run resumed from its checkpoint reproduces the uninterrupted one;
 * one process per rank under cli/launch.ts matches the Worker ranks.
 */
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { runTraining } from "../lib/cli/run.ts";
import type { RankResult } from "../lib/cli/loop.ts";
import { readCheckpointMeta } from "../lib/cli/checkpoint.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { freePort } from "../lib/dist/worker_ranks.ts";

const SMALL = ["--batch", "4", "--seq-len", "64", "--eval-batches", "1", "--gpu", "deno"];

async function train(args: string[]): Promise<RankResult> {
  const result = await runTraining([...SMALL, ...args], { tty: false, verbose: false });
  ok(result);
  return result;
}

const losses = (r: RankResult) => r.steps.map((s) => s.loss);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lasp-train-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("train CLI: the loss falls on 2 SP Worker ranks; metrics, SVG, checkpoint, sample", async () => {
  await withDir(async (dir) => {
    const r = await train([
      "--sp",
      "2",
      "--steps",
      "10",
      "--lr",
      "3e-3",
      "--eval-every",
      "5",
      "--sample-tokens",
      "16",
      "--out",
      dir,
    ]);
    const l = losses(r);
    deepStrictEqual(r.steps.map((s) => s.step), Array.from({ length: 10 }, (_, i) => i + 1));
    ok(l[0] > 5 && l[0] < 6, `initial loss ${l[0]} near ln 256 = 5.55`);
    const tail = (l[7] + l[8] + l[9]) / 3;
    ok(tail < l[0] - 1, `loss falls: ${l[0].toFixed(3)} → ${tail.toFixed(3)}`);
    deepStrictEqual(r.evals.map((e) => e.step), [5, 10]);
    ok(r.evals[1].valLoss < r.evals[0].valLoss, "validation loss falls");

    const records = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((
      line,
    ) => JSON.parse(line));
    const trainRecords = records.filter((x) => x.type === "train");
    deepStrictEqual(trainRecords.map((x) => x.loss), l);
    deepStrictEqual(trainRecords[0].tokens, 4 * 64);
    ok(trainRecords.every((x) => x.tokensPerSec > 0 && x.gradNorm > 0 && x.lr > 0));
    const evalRecords = records.filter((x) => x.type === "eval");
    deepStrictEqual(evalRecords.map((x) => x.step), [5, 10]);
    assertClose([evalRecords[1].valPerplexity], [Math.exp(evalRecords[1].valLoss)], {
      rms: 1e-12,
      label: "perplexity",
    });

    const svg = await Deno.readTextFile(`${dir}/loss.svg`);
    const points = (id: string) =>
      svg.match(new RegExp(`id="${id}"[^>]*points="([^"]*)"`))![1].split(" ").length;
    deepStrictEqual([points("train"), points("val")], [10, 2]);

    deepStrictEqual(r.checkpoints, [`${dir}/checkpoint-0000010.safetensors`]);
    const meta = await readCheckpointMeta(r.checkpoints[0]);
    deepStrictEqual([meta.step, meta.model.seqLen, meta.options.sp], [10, 64, 2]);
    ok(typeof r.sample === "string" && r.sample.length > 0, "a sample is generated");
  });
});

Deno.test("train CLI: --sp 1, 2, 4 and --sp 2 --dp 2 give the same per-step losses", async () => {
  await withDir(async (dir) => {
    const run = (sp: number, dp: number) =>
      train([
        "--sp",
        String(sp),
        "--dp",
        String(dp),
        "--steps",
        "3",
        "--eval-every",
        "0",
        "--sample-tokens",
        "0",
        "--out",
        `${dir}/sp${sp}dp${dp}`,
      ]);
    const ref = await run(1, 1);
    for (const [sp, dp] of [[2, 1], [4, 1], [2, 2]]) {
      const r = await run(sp, dp);
      const label = `sp ${sp} dp ${dp}`;
      assertClose(losses(r), losses(ref), { rms: 1e-5, label: `${label} losses` });
      assertClose(r.evals.map((e) => e.valLoss), ref.evals.map((e) => e.valLoss), {
        rms: 1e-5,
        label: `${label} validation`,
      });
      deepStrictEqual(r.steps.map((s) => s.tokens), ref.steps.map((s) => s.tokens));
    }
  });
});

Deno.test("train CLI: an interrupted run resumed from its checkpoint repeats the uninterrupted losses", async () => {
  await withDir(async (dir) => {
    const common = ["--sp", "2", "--steps", "6", "--eval-every", "3", "--sample-tokens", "0"];
    const whole = await train([...common, "--out", `${dir}/whole`]);
    const first = await train([...common, "--stop-at", "3", "--out", `${dir}/cut`]);
    deepStrictEqual(first.checkpoints, [`${dir}/cut/checkpoint-0000003.safetensors`]);
    deepStrictEqual(losses(first), losses(whole).slice(0, 3));
    await rejects(
      train(["--resume", first.checkpoints[0], "--seq-len", "32"]),
      /Cannot resume .*checkpoint-0000003\.safetensors: the options change its model's seqLen \(64 → 32\)/,
    );
    // Resuming reads every option from the checkpoint: only the path is given.
    const rest = await train(["--resume", `${dir}/cut`]);
    deepStrictEqual(rest.startStep, 3);
    deepStrictEqual(rest.steps.map((s) => s.step), [4, 5, 6]);
    deepStrictEqual(losses(rest), losses(whole).slice(3), "resumed losses equal bit for bit");
    deepStrictEqual(rest.steps.map((s) => s.gradNorm), whole.steps.slice(3).map((s) => s.gradNorm));
    deepStrictEqual(rest.evals, whole.evals.filter((e) => e.step > 3));
    const metrics = (await Deno.readTextFile(`${dir}/cut/metrics.jsonl`)).trim().split("\n").map((
      line,
    ) => JSON.parse(line)).filter((x) => x.type === "train");
    deepStrictEqual(metrics.map((x) => x.loss), losses(whole));
    // The state is whole on every rank, so a run may resume on another layout.
    const single = await train([
      "--resume",
      first.checkpoints[0],
      "--sp",
      "1",
      "--out",
      `${dir}/one`,
    ]);
    assertClose(losses(single), losses(whole).slice(3), { rms: 1e-5, label: "resumed on 1 rank" });
  });
});

Deno.test("train CLI: bad input exits 1 with one line; one process per rank matches Workers", async () => {
  const cli = new URL("../cli/train.ts", import.meta.url).pathname;
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "--sp", "3"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  deepStrictEqual(bad.code, 1);
  deepStrictEqual(
    new TextDecoder().decode(bad.stderr),
    "train: Invalid --seq-len 128: must be a multiple of --sp 3\n",
  );
  await withDir(async (dir) => {
    const args = ["--sp", "2", "--steps", "3", "--eval-every", "0", "--sample-tokens", "0"];
    const workers = await train([...args, "--out", `${dir}/workers`]);
    const launch = new URL("../cli/launch.ts", import.meta.url).pathname;
    const port = String(freePort());
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        launch,
        "--nproc",
        "2",
        "--master-port",
        port,
        cli,
        ...SMALL,
        ...args,
        "--out",
        `${dir}/procs`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
    const records = (await Deno.readTextFile(`${dir}/procs/metrics.jsonl`)).trim().split("\n").map((
      line,
    ) => JSON.parse(line)).filter((x) => x.type === "train");
    deepStrictEqual(records.map((x) => x.loss), losses(workers));
  });
});

Deno.test("train CLI: SIGTERM stops every rank after the same step, with a checkpoint", async () => {
  await withDir(async (dir) => {
    const cli = new URL("../cli/train.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, ...SMALL, "--sp", "2", "--steps", "200", "--out", dir],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!/^step +2\/200/m.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    child.kill("SIGTERM");
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    const status = await child.status;
    await child.stderr.cancel();
    deepStrictEqual(status.code, 0, text);
    const step = Number(text.match(/interrupted after step (\d+)/)?.[1]);
    ok(step >= 2 && step < 200, text);
    const meta = await readCheckpointMeta(
      `${dir}/checkpoint-${String(step).padStart(7, "0")}.safetensors`,
    );
    deepStrictEqual(meta.step, step);
    const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n");
    deepStrictEqual(
      lines.map((l) => JSON.parse(l).step),
      Array.from({ length: step }, (_, i) => i + 1),
    );
  });
});

Deno.test("train CLI: a launch whose world size is not sp × dp is rejected before connecting", async () => {
  await rejects(
    runTraining(["--sp", "2", "--dp", "2"], {
      env: { RANK: "0", WORLD_SIZE: "3" },
      verbose: false,
    }),
    /^Error: The launcher started 3 ranks \(WORLD_SIZE\) but --sp 2 × --dp 2 needs 4$/,
  );
  await rejects(
    runTraining(["--resume", "/nonexistent/ckpt"]),
    /Invalid --resume \/nonexistent\/ckpt: no such file/,
  );
});

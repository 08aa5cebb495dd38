import { deepStrictEqual, ok } from "node:assert/strict";
import { MetricsLog, type MetricsRecord } from "../lib/cli/metrics.ts";
import { formatCount, formatDuration, Progress } from "../lib/cli/progress.ts";

const train = (step: number, loss: number): MetricsRecord => ({
  type: "train",
  step,
  loss,
  lr: 1e-3,
  gradNorm: 1,
  tokens: 1024,
  tokensPerSec: 5000,
  elapsed: step * 0.5,
});

Deno.test("metrics.jsonl: a line per record; resume keeps steps up to the checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/metrics.jsonl`;
    const log = await MetricsLog.open(path);
    for (let s = 1; s <= 6; s++) await log.append(train(s, 6 - s));
    await log.append({
      type: "eval",
      step: 3,
      valLoss: 3.5,
      valPerplexity: Math.exp(3.5),
      elapsed: 2,
    });
    log.close();
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
    deepStrictEqual(lines.length, 7);
    deepStrictEqual(lines[0], train(1, 5));
    deepStrictEqual(Object.keys(lines[0]), [
      "type",
      "step",
      "loss",
      "lr",
      "gradNorm",
      "tokens",
      "tokensPerSec",
      "elapsed",
    ]);
    await Deno.writeTextFile(path, '{"type":"train","st', { append: true }); // cut off line

    const resumed = await MetricsLog.open(path, { resumeStep: 4 });
    deepStrictEqual(resumed.records.map((r) => [r.type, r.step]), [
      ["train", 1],
      ["train", 2],
      ["train", 3],
      ["train", 4],
      ["eval", 3],
    ]);
    deepStrictEqual(resumed.elapsed, 2);
    await resumed.append(train(5, 0.5));
    resumed.close();
    const again = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
    deepStrictEqual(again.length, 6);
    deepStrictEqual(resumed.curves(), {
      train: [5, 4, 3, 2, 0.5].map((loss, i) => ({ step: i + 1, loss })),
      val: [{ step: 3, loss: 3.5 }],
    });
    const fresh = await MetricsLog.open(path);
    fresh.close();
    deepStrictEqual(await Deno.readTextFile(path), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("progress: plain lines off a TTY, a bar redrawn in place on one", () => {
  let text = "";
  const plain = new Progress({ total: 200, tty: false, write: (t) => (text += t) });
  plain.step({ step: 7, loss: 4.56789, lr: 3e-4, tokensPerSec: 12345 });
  plain.message("eval: loss 4.1");
  ok(
    /^step {3}7\/200 loss 4\.5679 \| lr 3\.00e-4 \| 12\.3k tok\/s \| ETA \S+\neval: loss 4\.1\n$/
      .test(text),
    text,
  );

  text = "";
  const bar = new Progress({ total: 10, tty: true, barWidth: 10, write: (t) => (text += t) });
  bar.step({ step: 5, loss: 2, lr: 1e-3, tokensPerSec: 900 });
  ok(text.startsWith("\r\x1b[2Kstep  5/10 █████░░░░░ loss 2.0000"), text);
  bar.message("saved");
  ok(text.includes("\r\x1b[2Ksaved\nstep  5/10 █████░░░░░"));
  bar.finish();
  ok(text.endsWith("\n"));
});

Deno.test("progress: durations and counts are formatted for people", () => {
  deepStrictEqual(
    [formatDuration(5.4), formatDuration(75), formatDuration(4000), formatDuration(NaN)],
    ["5s", "1m15s", "1h06m", "?"],
  );
  deepStrictEqual([formatCount(950), formatCount(12345), formatCount(2.5e6)], [
    "950",
    "12.3k",
    "2.50M",
  ]);
});

// The longest sequence one GPU trains (one optimizer step, batch 1, T = 1, activation
// recomputation on by default): doubles the length from --start until an attempt fails, then
// bisects down to --step tokens. Each attempt is a fresh process (bench/_longest_rank.ts), so a
// failed allocation cannot poison the next one. Usage:
//   deno run -A bench/longest_sequence.ts --preset 1b [--gpu dawn] [--start 32768] [--max 1048576]
//     [--step 16384] [--recompute 1] [--timeout 300]
import { flag } from "./_timing.ts";

const args = Deno.args;
const preset = flag(args, "preset", "125m");
const gpuChoice = flag(args, "gpu", "auto");
const recompute = flag(args, "recompute", "1");
const start = Number(flag(args, "start", "32768"));
const max = Number(flag(args, "max", String(1 << 20)));
const step = Number(flag(args, "step", "16384"));
const timeoutS = Number(flag(args, "timeout", "300"));

interface Attempt {
  seqLen: number;
  ok: boolean;
  stepMs?: number;
  tokensPerSec?: number;
  peakGiB?: number;
  loss?: number;
  error?: string;
}

async function attempt(seqLen: number): Promise<Attempt> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--cached-only",
      new URL("./_longest_rank.ts", import.meta.url).pathname,
      "--preset",
      preset,
      "--seq-len",
      String(seqLen),
      "--recompute",
      recompute,
      "--gpu",
      gpuChoice,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").findLast((l) =>
    l.startsWith("{")
  );
  const result: Attempt = line ? JSON.parse(line) : {
    seqLen,
    ok: false,
    error: `exit ${out.code}${out.signal ? ` (${out.signal})` : ""}: ${
      new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)?.slice(0, 120)
    }`,
  };
  console.log(JSON.stringify(result));
  return result;
}

const attempts: Attempt[] = [];
let good = 0, bad = 0;
for (let n = start; n <= max; n *= 2) {
  const a = await attempt(n);
  attempts.push(a);
  if (!a.ok) {
    bad = n;
    break;
  }
  good = n;
}
while (bad > 0 && bad - good > step) {
  const mid = Math.round((good + bad) / 2 / step) * step;
  if (mid <= good || mid >= bad) break;
  const a = await attempt(mid);
  attempts.push(a);
  if (a.ok) good = mid;
  else bad = mid;
}
console.log(
  `\n${preset} (recompute ${
    recompute === "1" ? "on" : "off"
  }, ${gpuChoice}): longest sequence that trained: ${good} tokens${
    bad ? `; ${bad} failed` : ` (stopped at --max ${max})`
  }`,
);
console.log("| seq len | ok | step ms | tokens/s | peak GiB | loss / error |");
console.log("|---|---|---|---|---|---|");
for (const a of attempts.sort((x, y) => x.seqLen - y.seqLen)) {
  console.log(
    `| ${a.seqLen} | ${a.ok ? "yes" : "no"} | ${a.stepMs ?? ""} | ${a.tokensPerSec ?? ""} | ${
      a.peakGiB ?? ""
    } | ${a.ok ? a.loss?.toFixed(3) : a.error ?? ""} |`,
  );
}

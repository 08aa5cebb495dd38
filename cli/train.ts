/**
 * Trains a linear-attention language model with LASP:
 *
 *   deno run -A cli/train.ts                       # tiny model, SOTU corpus, 2 SP ranks
 *   deno run -A cli/train.ts --sp 2 --dp 2 --steps 500 --out out/run1
 *   deno run -A cli/train.ts --resume out/run1     # continue from the newest checkpoint
 *   deno run -A cli/launch.ts --nproc 4 cli/train.ts --sp 4   # one process per rank
 *
 * `--help` lists every flag. Outputs in --out: metrics.jsonl, loss.svg, checkpoint-*.safetensors.
 * @module
 */
import { runTraining } from "../lib/cli/run.ts";

try {
  await runTraining(Deno.args);
  Deno.exit(0); // a GPU device can keep the event loop alive
} catch (e) {
  console.error(`train: ${(e as Error).message}`);
  Deno.exit(1);
}

/**
 * Main script of a rank process started by `spawnProcessRanks`: connects through
 * `connectFromEnv` (the launcher set RANK, WORLD_SIZE, MASTER_ADDR/PORT and LASP_TOKEN), runs
 * the rank function its one argument names, and prints `RANK_RESULT <json>` or
 * `RANK_ERROR <json message>` on stdout.
 * @module
 */
import { connectFromEnv } from "./connect.ts";
import { runRankModule } from "../dist/worker_ranks.ts";
// The protocol lives in rank_json.ts: the parent must not import this module, which is the
// rank's main module and still evaluating (a cycle through it would deadlock on its await).
import {
  decodeRankJson,
  encodeRankJson,
  ERROR_PREFIX,
  type ProcessRankSpec,
  RESULT_PREFIX,
} from "./rank_json.ts";

async function run(spec: ProcessRankSpec): Promise<unknown> {
  const { comm } = await connectFromEnv({
    sp: spec.sp,
    timeoutMs: spec.timeoutMs,
    partBytes: spec.partBytes,
  });
  return await runRankModule(comm, spec.module, spec.exportName, spec.args);
}

if (import.meta.main) {
  let code = 0;
  try {
    const value = await run(decodeRankJson(Deno.args[0]) as ProcessRankSpec);
    console.log(RESULT_PREFIX + encodeRankJson(value));
  } catch (err) {
    console.log(ERROR_PREFIX + JSON.stringify((err as Error)?.message ?? String(err)));
    code = 1;
  }
  Deno.exit(code); // a GPU device may keep the event loop alive
}

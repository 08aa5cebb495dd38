/**
 * Starts N ranks of a script on this host with a rendezvous on MASTER_ADDR:MASTER_PORT:
 *
 *   deno run -A cli/launch.ts --nproc 4 [--master-port 29500] cli/train.ts --sp 2 --dp 2
 *
 * Each rank sees RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (as under torchrun)
 * and, on a multi-GPU host, its own GPU.
 * @module
 */
import { parseArgs } from "node:util";
import { launch } from "../lib/launch/launcher.ts";

const scriptAt = Deno.args.findIndex((a) => !a.startsWith("-") && /\.(ts|js)$/.test(a));
const own = scriptAt < 0 ? Deno.args : Deno.args.slice(0, scriptAt);
const { values } = parseArgs({
  args: own,
  options: {
    nproc: { type: "string", default: "1" },
    "master-addr": { type: "string", default: Deno.env.get("MASTER_ADDR") ?? "127.0.0.1" },
    "master-port": { type: "string", default: Deno.env.get("MASTER_PORT") ?? "29500" },
    gpus: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help || scriptAt < 0) {
  console.log(
    "usage: deno run -A cli/launch.ts --nproc N [--master-addr A] [--master-port P] [--gpus pci-…,pci-…] script.ts [args…]",
  );
  Deno.exit(values.help ? 0 : 2);
}
try {
  if (!/^\d+$/.test(values.nproc)) {
    throw new Error(`Invalid --nproc ${values.nproc}: must be an integer ≥ 1`);
  }
  const code = await launch({
    nproc: Number(values.nproc),
    command: Deno.args.slice(scriptAt),
    masterAddr: values["master-addr"],
    masterPort: Number(values["master-port"]),
    gpus: values.gpus?.split(","),
  });
  Deno.exit(code);
} catch (e) {
  console.error(`launch: ${(e as Error).message}`);
  Deno.exit(2);
}

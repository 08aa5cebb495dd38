/**
 * Where this process stands in a multi-process run, read from the environment that launchers
 * and schedulers set: our own `cli/launch.ts` and torchrun (RANK, WORLD_SIZE, LOCAL_RANK,
 * MASTER_ADDR, MASTER_PORT), Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
 * SLURM_NODELIST) and Open MPI (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK). Settings from several
 * sources must agree; contradictions are rejected.
 * @module
 */

/** Rank, world size and rendezvous address of this process. */
export interface LaunchEnv {
  /** Global rank in [0, worldSize). */
  rank: number;
  /** Number of ranks. */
  worldSize: number;
  /** Rank among the processes on this host (picks the GPU). */
  localRank: number;
  /** Address rank 0 listens on for the rendezvous. */
  masterAddr: string;
  /** Port of the rendezvous. */
  masterPort: number;
  /** Which launcher the values came from, e.g. `["torchrun", "slurm"]`; `[]` for a single process. */
  sources: string[];
}

/** Default rendezvous port when none is set (torchrun's default). */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`Invalid ${name}=${raw}: must be an integer ≥ ${min}`);
  }
  return value;
}

/**
 * First host of a Slurm node list: `node[01-04,07]` → `node01`, `a,b` → `a`,
 * `gpu-[3-5]x` → `gpu-3x`.
 */
export function firstSlurmHost(nodelist: string): string {
  const first = nodelist.match(/^([^,[]+)(\[([^\]]+)\])?([^,]*)/);
  if (!first) throw new Error(`Cannot parse SLURM_NODELIST=${nodelist}`);
  const [, prefix, , ranges, suffix] = first;
  if (!ranges) return prefix + suffix;
  const start = ranges.split(",")[0].split("-")[0];
  return prefix + start + suffix;
}

/** One launcher's view of the values, where it sets them. */
interface View {
  source: string;
  rank?: number;
  worldSize?: number;
  localRank?: number;
  masterAddr?: string;
}

function views(env: Env): View[] {
  const out: View[] = [];
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    out.push({
      source: "torchrun",
      rank: integer(env, "RANK", 0),
      worldSize: integer(env, "WORLD_SIZE", 1),
      localRank: integer(env, "LOCAL_RANK", 0),
    });
  }
  if (env.SLURM_PROCID !== undefined) {
    out.push({
      source: "slurm",
      rank: integer(env, "SLURM_PROCID", 0),
      worldSize: integer(env, "SLURM_NTASKS", 1),
      localRank: integer(env, "SLURM_LOCALID", 0),
      masterAddr: env.SLURM_NODELIST ? firstSlurmHost(env.SLURM_NODELIST) : undefined,
    });
  }
  if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    out.push({
      source: "openmpi",
      rank: integer(env, "OMPI_COMM_WORLD_RANK", 0),
      worldSize: integer(env, "OMPI_COMM_WORLD_SIZE", 1),
      localRank: integer(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0),
    });
  }
  return out;
}

function agree<K extends keyof View>(list: View[], key: K, label: string): View[K] | undefined {
  const set = list.filter((v) => v[key] !== undefined);
  for (const v of set) {
    if (v[key] !== set[0][key]) {
      throw new Error(
        `Contradictory ${label}: ${set.map((s) => `${s.source} says ${s[key]}`).join(", ")}`,
      );
    }
  }
  return set[0]?.[key];
}

/** Reads the launch environment (default: this process's); a lone process is rank 0 of 1. */
export function launchEnvFrom(env: Env = Deno.env.toObject()): LaunchEnv {
  const list = views(env);
  const worldSize = agree(list, "worldSize", "world size") ?? 1;
  const rank = agree(list, "rank", "rank") ?? 0;
  const localRank = agree(list, "localRank", "local rank") ?? 0;
  if (list.length > 0 && list.some((v) => v.worldSize === undefined)) {
    const missing = list.find((v) => v.worldSize === undefined)!;
    throw new Error(`Incomplete ${missing.source} environment: the world size is not set`);
  }
  if (rank >= worldSize) {
    throw new Error(`Invalid rank ${rank}: must be below the world size ${worldSize}`);
  }
  if (localRank > rank) {
    throw new Error(`Invalid local rank ${localRank}: cannot exceed the global rank ${rank}`);
  }
  const masterAddr = env.MASTER_ADDR || agree(list, "masterAddr", "master address") || "127.0.0.1";
  const masterPort = integer(env, "MASTER_PORT", 1) ?? DEFAULT_MASTER_PORT;
  if (masterPort > 65535) throw new Error(`Invalid MASTER_PORT=${masterPort}: must be ≤ 65535`);
  return { rank, worldSize, localRank, masterAddr, masterPort, sources: list.map((v) => v.source) };
}

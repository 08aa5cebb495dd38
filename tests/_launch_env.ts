/** Environments of rank processes as torchrun and Slurm would start them, for tests. */

/** This process's environment without any launcher's variables (the suite may run under one). */
export function cleanEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) =>
      !/^(RANK|WORLD_SIZE|LOCAL_RANK|MASTER_ADDR|MASTER_PORT|SLURM_.*|OMPI_.*|LASP_.*)$/.test(k)
    ),
  );
}

/** Variables torchrun (or Slurm's srun, with MASTER_PORT set by the batch script) gives `rank`. */
export function launcherVars(
  style: "torchrun" | "slurm",
  rank: number,
  world: number,
  port: number,
): Record<string, string> {
  return style === "torchrun"
    ? {
      RANK: String(rank),
      WORLD_SIZE: String(world),
      LOCAL_RANK: String(rank),
      MASTER_ADDR: "127.0.0.1",
      MASTER_PORT: String(port),
    }
    : {
      SLURM_PROCID: String(rank),
      SLURM_NTASKS: String(world),
      SLURM_LOCALID: String(rank),
      SLURM_NODELIST: "127.0.0.1",
      MASTER_PORT: String(port),
    };
}

/** Runs `world` processes of `script` with `style` variables; returns each one's RESULT json. */
export async function runWithLauncherVars<R>(
  style: "torchrun" | "slurm",
  world: number,
  script: string,
  args: string[] = [],
): Promise<R[]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const base = cleanEnv();
  const outputs = await Promise.all(
    Array.from({ length: world }, (_, rank) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, ...args],
        env: { ...base, ...launcherVars(style, rank, world, port), LASP_GPU: "deno" },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  return outputs.map((out, rank) => {
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("RESULT ")
    );
    if (!out.success || !line) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-4).join(" / ");
      throw new Error(`${style} rank ${rank} failed (exit ${out.code}): ${err}`);
    }
    return JSON.parse(line.slice(7)) as R;
  });
}

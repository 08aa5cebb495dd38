import { deepEqual, equal, throws } from "node:assert/strict";
import { firstSlurmHost, launchEnvFrom } from "../lib/launch/env.ts";

Deno.test("a lone process is rank 0 of 1 on loopback", () => {
  deepEqual(launchEnvFrom({}), {
    rank: 0,
    worldSize: 1,
    localRank: 0,
    masterAddr: "127.0.0.1",
    masterPort: 29500,
    sources: [],
  });
});

Deno.test("torchrun-style variables", () => {
  const env = launchEnvFrom({
    RANK: "3",
    WORLD_SIZE: "4",
    LOCAL_RANK: "1",
    MASTER_ADDR: "10.1.2.3",
    MASTER_PORT: "1234",
  });
  deepEqual(env, {
    rank: 3,
    worldSize: 4,
    localRank: 1,
    masterAddr: "10.1.2.3",
    masterPort: 1234,
    sources: ["torchrun"],
  });
});

Deno.test("Slurm variables, master from the node list", () => {
  const env = launchEnvFrom({
    SLURM_PROCID: "5",
    SLURM_NTASKS: "8",
    SLURM_LOCALID: "1",
    SLURM_NODELIST: "gpu[07-08,11]",
  });
  equal(env.rank, 5);
  equal(env.worldSize, 8);
  equal(env.localRank, 1);
  equal(env.masterAddr, "gpu07");
  deepEqual(env.sources, ["slurm"]);
  equal(firstSlurmHost("a,b"), "a");
  equal(firstSlurmHost("n-[3-5]x,m1"), "n-3x");
});

Deno.test("Open MPI variables", () => {
  const env = launchEnvFrom({
    OMPI_COMM_WORLD_RANK: "2",
    OMPI_COMM_WORLD_SIZE: "3",
    OMPI_COMM_WORLD_LOCAL_RANK: "0",
  });
  deepEqual([env.rank, env.worldSize, env.localRank], [2, 3, 0]);
});

Deno.test("agreeing launchers combine; contradictions are rejected", () => {
  const both = launchEnvFrom({ RANK: "1", WORLD_SIZE: "2", SLURM_PROCID: "1", SLURM_NTASKS: "2" });
  deepEqual(both.sources, ["torchrun", "slurm"]);
  throws(
    () => launchEnvFrom({ RANK: "1", WORLD_SIZE: "2", SLURM_PROCID: "0", SLURM_NTASKS: "2" }),
    /Contradictory rank: torchrun says 1, slurm says 0/,
  );
  throws(
    () =>
      launchEnvFrom({
        RANK: "0",
        WORLD_SIZE: "2",
        OMPI_COMM_WORLD_RANK: "0",
        OMPI_COMM_WORLD_SIZE: "4",
      }),
    /Contradictory world size: torchrun says 2, openmpi says 4/,
  );
});

Deno.test("bad values are named in the error", () => {
  throws(
    () => launchEnvFrom({ RANK: "4", WORLD_SIZE: "4" }),
    /Invalid rank 4: must be below the world size 4/,
  );
  throws(
    () => launchEnvFrom({ RANK: "x", WORLD_SIZE: "4" }),
    /Invalid RANK=x: must be an integer ≥ 0/,
  );
  throws(
    () => launchEnvFrom({ RANK: "0" }),
    /Incomplete torchrun environment: the world size is not set/,
  );
  throws(() => launchEnvFrom({ MASTER_PORT: "70000" }), /Invalid MASTER_PORT=70000/);
});

import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import {
  checkpointName,
  loadCheckpoint,
  readCheckpointMeta,
  resolveCheckpointPath,
  saveCheckpoint,
} from "../lib/cli/checkpoint.ts";
import { resolveTrainOptions } from "../lib/cli/options.ts";
import { parameterSpecs } from "../lib/model/params.ts";
import { encodeSafetensors, SafetensorsFile } from "../lib/checkpoint/safetensors.ts";
import { randomArray } from "../lib/testing/reference.ts";
import type { NamedArrays } from "../lib/train/types.ts";

function sampleCheckpoint() {
  const { options, model, train } = resolveTrainOptions({ steps: 40, seed: 99, sp: 1 });
  const params: NamedArrays = {}, optimizer: NamedArrays = {};
  parameterSpecs(model).forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    params[s.name] = { data: randomArray(n, 10 + i), shape: s.shape };
    optimizer[`${s.name}.exp_avg`] = { data: randomArray(n, 500 + i), shape: s.shape };
    optimizer[`${s.name}.exp_avg_sq`] = { data: randomArray(n, 900 + i, 0, 1), shape: s.shape };
  });
  return {
    state: { params, optimizer, step: 17 },
    model,
    train,
    loader: { seed: 99, epoch: 2, cursor: 136 },
    options,
  };
}

// Python's safetensors, when this machine has it, must read the file as a plain state dict.
const hasPython = (() => {
  try {
    return new Deno.Command("python3", { args: ["-c", "import safetensors.numpy"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test("checkpoint round trip: tensors bit-exact, metadata and configs restored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ckpt = sampleCheckpoint();
    const path = `${dir}/${checkpointName(17)}`;
    await saveCheckpoint(path, ckpt);
    const back = await loadCheckpoint(path);
    deepStrictEqual(back.state.step, 17);
    deepStrictEqual(Object.keys(back.state.params).sort(), Object.keys(ckpt.state.params).sort());
    deepStrictEqual(back.state, ckpt.state);
    deepStrictEqual([back.model, back.train, back.loader], [ckpt.model, ckpt.train, ckpt.loader]);
    deepStrictEqual(back.options, JSON.parse(JSON.stringify(ckpt.options)));
    const meta = await readCheckpointMeta(path);
    deepStrictEqual([meta.step, meta.loader, meta.model], [17, ckpt.loader, ckpt.model]);

    // Standard names and shapes in the file; moments behind the optimizer. prefix.
    const file = await SafetensorsFile.open(path);
    const head = file.header;
    file.close();
    deepStrictEqual(head.tensors.get("embed_tokens.weight")?.shape, [256, 128]);
    deepStrictEqual(head.tensors.get("layers.1.token_mixer.qkvu_proj.weight")?.shape, [512, 128]);
    ok(head.tensors.has("optimizer.layers.0.channel_mixer.l3.weight.exp_avg_sq"));
    deepStrictEqual(
      [head.metadata.format, head.metadata.format_version, head.metadata.step, head.metadata.seed],
      ["lasp-train-checkpoint", "1", "17", "99"],
    );
    deepStrictEqual(JSON.parse(head.metadata.loader), { seed: 99, epoch: 2, cursor: 136 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "checkpoint loads in Python's safetensors with standard names and values",
  ignore: !hasPython,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const ckpt = sampleCheckpoint();
      const path = `${dir}/c.safetensors`;
      await saveCheckpoint(path, ckpt);
      const script = `
import json, sys
from safetensors import safe_open
with safe_open(sys.argv[1], "numpy") as f:
    w = f.get_tensor("layers.0.token_mixer.out_proj.weight")
    print(json.dumps({"meta": f.metadata()["step"], "shape": list(w.shape),
        "first": [float(x) for x in w.reshape(-1)[:3]],
        "n": sum(1 for k in f.keys() if not k.startswith("optimizer."))}))`;
      const out = await new Deno.Command("python3", { args: ["-c", script, path] }).output();
      ok(out.success, new TextDecoder().decode(out.stderr));
      const got = JSON.parse(new TextDecoder().decode(out.stdout));
      const w = ckpt.state.params["layers.0.token_mixer.out_proj.weight"];
      deepStrictEqual(got, {
        meta: "17",
        shape: w.shape,
        first: Array.from(w.data.subarray(0, 3)),
        n: Object.keys(ckpt.state.params).length,
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("--resume of a directory picks the highest step; bad checkpoints are named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ckpt = sampleCheckpoint();
    for (const step of [9, 120, 35]) {
      await saveCheckpoint(`${dir}/${checkpointName(step)}`, {
        ...ckpt,
        state: { ...ckpt.state, step },
      });
    }
    deepStrictEqual(await resolveCheckpointPath(dir), `${dir}/${checkpointName(120)}`);
    deepStrictEqual((await readCheckpointMeta(await resolveCheckpointPath(dir))).step, 120);
    await rejects(resolveCheckpointPath(`${dir}/nope`), /Invalid --resume .*nope: no such file/);
    const empty = await Deno.makeTempDir({ dir });
    await rejects(resolveCheckpointPath(empty), /holds no checkpoint-\*\.safetensors/);
    const plain = `${dir}/plain.safetensors`;
    await Deno.writeFile(
      plain,
      encodeSafetensors({ w: { dtype: "F32", shape: [1], data: new Float32Array(1) } }),
    );
    await rejects(loadCheckpoint(plain), /plain.safetensors is not a usable training checkpoint/);
    await rejects(loadCheckpoint(`${dir}/missing.safetensors`), /does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

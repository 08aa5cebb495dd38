/**
 * The parameters of a model: names, shapes, weight-decay and initialization rules. Names
 * follow TransNormerLLM's released checkpoints (`embed_tokens`, `token_mixer.qkvu_proj`,
 * `channel_mixer.l1`…), and weights are stored as PyTorch's `nn.Linear` stores them,
 * `[out, in]`, so a safetensors checkpoint reads naturally from Python.
 * @module
 */
import type { ModelConfig } from "./config.ts";

/** How a parameter starts. */
export type ParamInit =
  /** Normal(0, initStd). */
  | "normal"
  /** Normal(0, initStd / sqrt(2·layers)): projections into the residual stream (GPT-2). */
  | "normal_residual"
  /** All ones (norm gains). */
  | "ones";

/** One parameter tensor. */
export interface ParamSpec {
  /** Checkpoint name, e.g. `layers.0.token_mixer.qkvu_proj.weight`. */
  name: string;
  /** Shape (`[out, in]` for weight matrices). */
  shape: number[];
  /** AdamW applies weight decay (matrices yes; gains and biases no). */
  decay: boolean;
  /** Initialization rule. */
  init: ParamInit;
}

/** Every parameter of the model, in a fixed order (the checkpoint and optimizer order). */
export function parameterSpecs(c: ModelConfig): ParamSpec[] {
  const inner = c.heads * c.headDim;
  const specs: ParamSpec[] = [
    { name: "embed_tokens.weight", shape: [c.vocabSize, c.dim], decay: true, init: "normal" },
  ];
  const gain = (name: string) => {
    if (c.normGain) specs.push({ name, shape: [c.dim], decay: false, init: "ones" });
  };
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    gain(`${p}.token_norm.weight`);
    specs.push(
      {
        name: `${p}.token_mixer.qkvu_proj.weight`,
        shape: [4 * inner, c.dim],
        decay: true,
        init: "normal",
      },
      {
        name: `${p}.token_mixer.out_proj.weight`,
        shape: [c.dim, inner],
        decay: true,
        init: "normal_residual",
      },
    );
    gain(`${p}.channel_norm.weight`);
    specs.push(
      {
        name: `${p}.channel_mixer.l1.weight`,
        shape: [c.gluDim, c.dim],
        decay: true,
        init: "normal",
      },
      {
        name: `${p}.channel_mixer.l2.weight`,
        shape: [c.gluDim, c.dim],
        decay: true,
        init: "normal",
      },
      {
        name: `${p}.channel_mixer.l3.weight`,
        shape: [c.dim, c.gluDim],
        decay: true,
        init: "normal_residual",
      },
    );
  }
  gain("final_norm.weight");
  if (!c.tieEmbeddings) {
    specs.push({
      name: "lm_head.weight",
      shape: [c.vocabSize, c.dim],
      decay: true,
      init: "normal",
    });
  }
  return specs;
}

/** Total parameter count (tied embeddings counted once). */
export function parameterCount(c: ModelConfig): number {
  return parameterSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

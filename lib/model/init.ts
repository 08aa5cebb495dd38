/**
 * Initial parameters on the host, identical on every rank: each tensor draws from its own
 * stream `deriveSeed(seed, index)` (index in checkpoint order), so adding a parameter does
 * not shift the others' values and every rank computes the same numbers from the seed.
 * @module
 */
import { deriveSeed, Rng } from "../util/rng.ts";
import type { NamedArrays } from "../train/types.ts";
import type { ModelConfig } from "./config.ts";
import { parameterSpecs } from "./params.ts";

/** Every parameter of `config` initialized by its rule (normal, residual-scaled normal, ones). */
export function initParams(config: ModelConfig, seed: number): NamedArrays {
  if (!Number.isInteger(seed)) throw new Error(`Invalid seed ${seed}: must be an integer`);
  const out: NamedArrays = {};
  parameterSpecs(config).forEach((spec, index) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (spec.init === "ones") data.fill(1);
    else {
      const std = spec.init === "normal_residual"
        ? config.initStd / Math.sqrt(2 * config.layers)
        : config.initStd;
      const rng = new Rng(deriveSeed(seed, index));
      for (let i = 0; i < n; i++) data[i] = std * rng.normal();
    }
    out[spec.name] = { data, shape: [...spec.shape] };
  });
  return out;
}

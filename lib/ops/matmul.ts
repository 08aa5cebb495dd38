/**
 * Matrix products on the GPU: `C[..., M, N] = alpha · op(A)[..., M, K] · op(B)[..., K, N]`,
 * with optional transposes, accumulation into C, and batching (a missing batch on one side
 * broadcasts). The WGSL comes from `shaders/matmul.ts`.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { emptyTensor, shapeSize, type Tensor } from "../gpu/tensor.ts";
import { describeShape } from "./_check.ts";
import { type MatmulConfig, matmulKey, type MatmulTile, matmulWgsl } from "../../shaders/matmul.ts";

/** Default tile: 128×128 per workgroup, 8×8 per thread (256 threads), k-steps of 16. */
export const DEFAULT_TILE: MatmulTile = { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 };
/** Tile for products too small to fill the GPU with 128×128 tiles. */
export const SMALL_TILE: MatmulTile = { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 };

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** A is stored [..., K, M]. */
  transA?: boolean;
  /** B is stored [..., N, K]. */
  transB?: boolean;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Write into this tensor instead of a new one. */
  out?: Tensor;
  /** With `out`: add the product to it (`out += alpha·A·B`). */
  accumulate?: boolean;
  /** Tile override (benchmarks); default: by problem size. */
  tile?: MatmulTile;
}

/** Picks the tile: large tiles when they yield enough workgroups to fill a big GPU. */
export function chooseTile(m: number, n: number, batch: number): MatmulTile {
  const bigTiles = Math.ceil(m / 128) * Math.ceil(n / 128) * batch;
  return bigTiles >= 96 ? DEFAULT_TILE : SMALL_TILE;
}

/** `alpha · op(A) · op(B)` (see module doc); returns the output tensor. */
export async function matmul(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions = {},
): Promise<Tensor> {
  const transA = options.transA ?? false, transB = options.transB ?? false;
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(
      `matmul needs matrices: got A ${describeShape(a.shape)} and B ${describeShape(b.shape)}`,
    );
  }
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new Error(`matmul supports f32 only: got A ${a.dtype}, B ${b.dtype}`);
  }
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [k2, n] = transB ? [bc, br] : [br, bc];
  if (k !== k2) {
    throw new Error(
      `matmul inner dimensions differ: A ${describeShape(a.shape)}${
        transA ? "ᵀ" : ""
      } has K=${k}, B ${describeShape(b.shape)}${transB ? "ᵀ" : ""} has K=${k2}`,
    );
  }
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const sameBatch = batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i]);
  if (!sameBatch && batchA.length > 0 && batchB.length > 0) {
    throw new Error(
      `matmul batch dimensions differ: A ${describeShape(a.shape)}, B ${describeShape(b.shape)}`,
    );
  }
  const batchShape = batchA.length > 0 ? batchA : batchB;
  const batch = shapeSize(batchShape);
  const outShape = [...batchShape, m, n];
  const out = options.out ?? emptyTensor(gpu, outShape);
  if (shapeSize(out.shape) !== shapeSize(outShape)) {
    throw new Error(
      `matmul output ${describeShape(out.shape)} does not hold ${describeShape(outShape)}`,
    );
  }
  if (options.accumulate && !options.out) {
    throw new Error("matmul accumulate needs an out tensor to add to");
  }
  const tile = options.tile ?? chooseTile(m, n, batch);
  const lda = ac, ldb = bc, ldc = n;
  const aligned = m % tile.bm === 0 && n % tile.bn === 0 && k % tile.bk === 0 &&
    lda % 4 === 0 && ldb % 4 === 0 && ldc % 4 === 0;
  const config: MatmulConfig = {
    ...tile,
    transA,
    transB,
    accumulate: options.accumulate ?? false,
    aligned,
  };
  const kernel = await gpu.kernels.get({ key: matmulKey(config), code: () => matmulWgsl(config) });
  gpu.commands.dispatch(kernel, {
    bindings: {
      p: {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
        strideA: batchA.length > 0 ? ar * ac : 0,
        strideB: batchB.length > 0 ? br * bc : 0,
        strideC: m * n,
        alpha: options.alpha ?? 1,
      },
      [aligned ? "a4" : "a"]: a,
      [aligned ? "b4" : "b"]: b,
      C: out,
    },
    workgroups: [Math.ceil(n / tile.bn), Math.ceil(m / tile.bm), batch],
  });
  return out;
}

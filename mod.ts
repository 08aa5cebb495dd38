/**
 * LASP for WebGPU: training linear-attention language models on very long sequences across
 * GPUs, from Deno. Fused WGSL linear-attention kernels run on any WebGPU implementation (Deno's
 * built-in one or Dawn); sequence-parallel ranks pass one small state per head in a ring.
 *
 * ```ts
 * import { downloadTensor, matmul, openDevice, uploadTensor } from "./mod.ts";
 * const gpu = await openDevice();
 * const a = uploadTensor(gpu, new Float32Array(6).fill(1), [2, 3]);
 * const b = uploadTensor(gpu, new Float32Array(12).fill(2), [3, 4]);
 * console.log(await downloadTensor(gpu, await matmul(gpu, a, b))); // 6 everywhere
 * ```
 * @module
 */
export {
  type Gpu,
  GPU_ENV,
  type GpuChoice,
  type GpuImplementation,
  NAN_FILL_ENV,
  openDevice,
  type OpenDeviceOptions,
  resolveGpuChoice,
} from "./lib/gpu/device.ts";
export {
  downloadTensor,
  downloadTensors,
  type DType,
  emptyTensor,
  type HostArray,
  shapeSize,
  Tensor,
  uploadTensor,
  writeTensor,
} from "./lib/gpu/tensor.ts";
export { BufferPool, type BufferPoolOptions } from "./lib/gpu/pool.ts";
export {
  type BindingValue,
  type Kernel,
  type KernelBinding,
  KernelCache,
  type KernelSpec,
  reflectEntry,
  type UniformValues,
} from "./lib/gpu/kernel.ts";
export {
  CommandQueue,
  DEFAULT_RECORDING,
  type DispatchOptions,
  type RecordingOptions,
} from "./lib/gpu/commands.ts";
export { GpuProfiler, type ProfileEntry } from "./lib/gpu/profiler.ts";
export { matmul, type MatmulOptions } from "./lib/ops/matmul.ts";
export {
  add,
  type ElementwiseOptions,
  mul,
  scale,
  siluBackward,
  siluForward,
} from "./lib/ops/elementwise.ts";
export { linearWorkgroups } from "./lib/gpu/commands.ts";
export { shaderSource } from "./lib/gpu/shader_source.ts";
export type { MatmulTile } from "./shaders/matmul.ts";
export {
  type Decay,
  type IoType as LaIoType,
  type LaArray,
  laBackward,
  type LaBackwardInputs,
  type LaBackwardOutputs,
  laForward,
  type LaForwardInputs,
  type LaForwardOutputs,
  laLocalState,
  laLocalStateGrad,
  type LaLocalStateGradInputs,
  type LaLocalStateInputs,
  type LaPropagateInputs,
  laPropagateState,
  type LaShape,
  type LaTuning,
  linearAttention,
  linearAttentionBackward,
  type LinearAttentionBackwardInputs,
  type LinearAttentionInputs,
  MAX_HEAD_DIM,
  type StateTile as LaStateTile,
} from "./lib/ops/linear_attention/mod.ts";
// Model building blocks, data, checkpoints and config (lib/ops/{srmsnorm,activation,embedding,
// cross_entropy,adamw}, lib/data, lib/checkpoint, lib/model).
export {
  srmsnormBackward,
  type SrmsnormBackwardOptions,
  srmsnormForward,
  type SrmsnormOptions,
  type SrmsnormSaved,
} from "./lib/ops/srmsnorm/srmsnorm.ts";
export {
  type GateActivation,
  normGateBackward,
  normGateForward,
  type NormGateOptions,
} from "./lib/ops/srmsnorm/norm_gate.ts";
export {
  type FeatureMap,
  featureMapBackward,
  featureMapForward,
  fill,
  gluBackward,
} from "./lib/ops/activation/activation.ts";
export {
  embeddingBackward,
  type EmbeddingBackwardOptions,
  embeddingForward,
  type EmbeddingPlan,
  embeddingScatterPlan,
} from "./lib/ops/embedding/embedding.ts";
export {
  crossEntropyBackward,
  type CrossEntropyBackwardOptions,
  crossEntropyForward,
  type CrossEntropyResult,
  IGNORE_INDEX,
} from "./lib/ops/cross_entropy/cross_entropy.ts";
export { adamwStep, type AdamwStepOptions, gradNormClip } from "./lib/ops/adamw/adamw.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsArray,
  type SafetensorsDType,
  SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsTensor,
  writeSafetensors,
} from "./lib/checkpoint/safetensors.ts";
export {
  type DecaySchedule,
  DEFAULT_CONFIG,
  type ModelConfig,
  type ModelKind,
  PRESETS,
  resolveModelConfig,
  type ResolveOptions,
  type TokenizerName,
  validateModelConfig,
} from "./lib/model/config.ts";
export { decayRates } from "./lib/model/decay.ts";
export {
  parameterCount,
  parameterSpecs,
  type ParamInit,
  type ParamSpec,
} from "./lib/model/params.ts";
export { loadTokenizer, type Tokenizer } from "./lib/data/tokenizer.ts";
export { loadTokens, type LoadTokensOptions, type TokenSource } from "./lib/data/source.ts";
export { splitTokens, type TokenArray } from "./lib/data/split.ts";
export {
  type Batch,
  BatchLoader,
  type BatchLoaderOptions,
  evalBatches,
  inputsAndTargets,
  type LoaderPosition,
} from "./lib/data/loader.ts";
export {
  decodeShard,
  encodeShard,
  readShard,
  type ShardHeader,
  type TokenShard,
  writeShard,
} from "./lib/data/shard.ts";
export { Rng } from "./lib/util/rng.ts";
export {
  type AllGatherOptions,
  type CollectiveOptions,
  type CommCounters,
  Communicator,
  type CommunicatorOptions,
  type RecvOptions,
} from "./lib/dist/communicator.ts";
export { type Group, type RankGroups, rankGroups, shardRange } from "./lib/dist/groups.ts";
export {
  DIR_BACKWARD,
  DIR_FORWARD,
  DIR_GATHER_BACKWARD,
  DIR_GATHER_FORWARD,
  type GroupKind,
  type RingOutcome,
  type Tag,
  type Transport,
} from "./lib/dist/transport.ts";
export { WorkerTransport } from "./lib/dist/worker_transport.ts";
export {
  freePort,
  type RankFunction,
  type RankSpawnOptions,
  spawnWorkerRanks,
  type SpawnWorkerRanksOptions,
} from "./lib/dist/worker_ranks.ts";
export {
  connectWebSocketTransport,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from "./lib/dist/ws/ws_transport.ts";
export {
  type AttentionLayer,
  LaspAttention,
  type LaspAttentionOptions,
  type LaspBackwardInputs,
  type LaspCounters,
  type LaspForwardInputs,
  type LaspMode,
} from "./lib/lasp/attention.ts";
export {
  joinSequence,
  type SequenceArray,
  type SequenceLayout,
  sequenceRange,
  sliceSequence,
} from "./lib/lasp/split.ts";
// Model forward/backward, trainer, sampling (training core)
export {
  type HeadDims,
  headsToTokens,
  mergeQkvu,
  type QkvuParts,
  type RowRange,
  splitQkvu,
  tokensToHeads,
} from "./lib/ops/heads/heads.ts";
export {
  blockBackward,
  type BlockContext,
  blockForward,
  blockParamNames,
  type BlockParams,
  type BlockSaved,
  linear,
  linearBackward,
  ROW_CHUNK_BYTES,
  rowChunks,
  savedTensors,
} from "./lib/model/block.ts";
export {
  type LossResult,
  Model,
  type ModelHooks,
  type ModelOptions,
  type TokenBatch,
} from "./lib/model/model.ts";
export {
  LOGITS_CHUNK_BYTES,
  logitsChunkRows,
  lossHead,
  type LossHeadOptions,
} from "./lib/model/loss_head.ts";
export { initParams } from "./lib/model/init.ts";
export {
  modelLogitsReference,
  modelLossReference,
  type ReferenceParams,
} from "./lib/model/reference.ts";
export { generate, type GenerateOptions, sampleToken } from "./lib/model/generate.ts";
export {
  RecurrentAttention,
  type RecurrentAttentionOptions,
} from "./lib/model/recurrent_attention.ts";
export { Trainer, type TrainerOptions } from "./lib/train/trainer.ts";
export { learningRate } from "./lib/train/schedule.ts";
export { resolveTrainConfig } from "./lib/train/validate.ts";
export { GradReducer, type GradReducerOptions } from "./lib/train/grad_reduce.ts";
export {
  DEFAULT_TRAIN_CONFIG,
  type MicroBatch,
  type NamedArrays,
  type StepStats,
  type TrainConfig,
  type TrainerLike,
  type TrainerState,
} from "./lib/train/types.ts";
// The training CLI's pieces (lib/cli): options, the run, checkpoints, metrics, loss curve.
export {
  DEFAULT_OPTIONS,
  type ParsedArgs,
  parseTrainArgs,
  type ResolvedRun,
  resolveTrainOptions,
  type TrainOptions,
  trainUsage,
} from "./lib/cli/options.ts";
export { runTraining, type RunTrainingOptions } from "./lib/cli/run.ts";
export type { EvalResult, RankArgs, RankResult } from "./lib/cli/loop.ts";
export {
  type Checkpoint,
  type CheckpointMeta,
  loadCheckpoint,
  readCheckpointMeta,
  saveCheckpoint,
} from "./lib/cli/checkpoint.ts";
export {
  type EvalRecord,
  MetricsLog,
  type MetricsRecord,
  type TrainRecord,
} from "./lib/cli/metrics.ts";
export { type CurvePoint, type LossCurveOptions, lossCurveSvg } from "./lib/cli/svg.ts";
export {
  DEFAULT_PIECE_BYTES,
  ringAllGather,
  type RingAllGatherOptions,
  ringAllReduce,
  type RingJob,
  type RingLink,
  type RingOp,
  type RingOptions,
  ringReduceScatter,
  runRingJob,
} from "./lib/dist/ring.ts";
export { connectFromEnv, type ConnectFromEnvOptions } from "./lib/launch/connect.ts";
export { spawnProcessRanks, type SpawnProcessRanksOptions } from "./lib/launch/process_ranks.ts";
export { type LaunchEnv } from "./lib/launch/env.ts";
export {
  BucketReducer,
  type BucketReducerOptions,
  type ReducedGrads,
} from "./lib/train/bucket_reducer.ts";
export {
  reductionMode,
  ZeroOptimizer,
  type ZeroOptimizerOptions,
  type ZeroStage,
  type ZeroStepResult,
} from "./lib/train/zero.ts";
export {
  backwardOrder,
  bucketUnits,
  type FlatParam,
  type FlatUnit,
  layerUnits,
  type ShardSegment,
  type UnitEntry,
  ZeroLayout,
  type ZeroMemory,
} from "./lib/train/zero_layout.ts";
export { DEFAULT_BUCKET_MIB, ZeroDriver, type ZeroNet } from "./lib/train/zero_driver.ts";

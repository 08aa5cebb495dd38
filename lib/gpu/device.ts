/**
 * Opening a WebGPU device from a chosen implementation: Deno's built-in `navigator.gpu`
 * (wgpu) or Dawn through the npm package `webgpu`. Everything else in the toolkit is written
 * against the standard `GPUDevice` interface, so either one runs it.
 * @module
 */
import { importDawn } from "../deps.ts";
import { BufferPool } from "./pool.ts";
import { KernelCache } from "./kernel.ts";
import { CommandQueue } from "./commands.ts";

/** A WebGPU implementation that can run the toolkit. */
export type GpuImplementation = "deno" | "dawn";
/** What `openDevice` may be asked for; `auto` prefers Dawn on a hardware adapter. */
export type GpuChoice = GpuImplementation | "auto";

/** Environment variable that picks the implementation when no option does. */
export const GPU_ENV = "LASP_GPU";
/** Environment variable that turns on NaN-filling of every buffer handed out (tests). */
export const NAN_FILL_ENV = "LASP_NAN_FILL";

/** Options of {@linkcode openDevice}. */
export interface OpenDeviceOptions {
  /** Implementation to use; default: `$LASP_GPU`, else `"auto"`. */
  gpu?: GpuChoice;
  /** Adapter power preference. Default `"high-performance"`. */
  powerPreference?: GPUPowerPreference;
  /** Fill every buffer from the pool with NaN before handing it out. Default: `$LASP_NAN_FILL == "1"`. */
  nanFill?: boolean;
}

/** Optional features asked for whenever the adapter has them. */
const USEFUL_FEATURES = ["shader-f16", "timestamp-query", "subgroups"] as const;

/** One opened WebGPU device with the toolkit's per-device state (buffer pool, pipeline cache). */
export interface Gpu {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** Which implementation it came from. */
  readonly implementation: GpuImplementation;
  /** Human-readable adapter description, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15…)". */
  readonly adapterName: string;
  /** True for software adapters (lavapipe/llvmpipe). */
  readonly isFallbackAdapter: boolean;
  /** Features enabled on the device. */
  readonly features: ReadonlySet<string>;
  /** Limits of the device (the adapter's, as requested). */
  readonly limits: GPUSupportedLimits;
  /** Pool that tensors take their buffers from. */
  readonly pool: BufferPool;
  /** Compiled pipelines of this device. */
  readonly kernels: KernelCache;
  /** Pending GPU work: dispatches and copies, submitted in batches. */
  readonly commands: CommandQueue;
  /** Releases pooled buffers and destroys the device. */
  destroy(): void;
}

function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/** Reads the implementation choice from options, then `$LASP_GPU`, validating either. */
export function resolveGpuChoice(choice?: string): GpuChoice {
  const value = choice ?? envValue(GPU_ENV) ?? "auto";
  if (value !== "deno" && value !== "dawn" && value !== "auto") {
    throw new Error(
      `Unknown WebGPU implementation "${value}": gpu must be "deno", "dawn" or "auto" (option gpu or $${GPU_ENV})`,
    );
  }
  return value;
}

let dawnGpu: Promise<GPU | undefined> | undefined;
/** Loads Dawn once per process; undefined when its native module cannot load here. */
function loadDawn(): Promise<GPU | undefined> {
  dawnGpu ??= (async () => {
    try {
      const dawn = await importDawn();
      // Dawn quantizes timestamps by default (a browser anti-fingerprinting measure), which
      // makes benchmark numbers coarse: turn that off.
      return dawn.create([
        "enable-dawn-features=allow_unsafe_apis",
        "disable-dawn-features=timestamp_quantization",
      ]);
    } catch {
      return undefined;
    }
  })();
  return dawnGpu;
}

async function requestAdapter(
  impl: GpuImplementation,
  powerPreference: GPUPowerPreference,
): Promise<GPUAdapter | null> {
  const gpu = impl === "dawn" ? await loadDawn() : navigator.gpu;
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter({ powerPreference });
  } catch {
    return null;
  }
}

const NO_ADAPTER_HELP = "install a Vulkan driver (on a CPU-only Debian/Ubuntu machine: " +
  "apt-get install -y mesa-vulkan-drivers; on NVIDIA: the driver's Vulkan ICD)";

/** True inside a Web Worker (ranks as Workers), false on a process's main thread. */
export function inWorker(): boolean {
  return typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";
}

/**
 * Opens a device with the adapter's full limits and the useful optional features.
 *
 * Inside a Worker, Dawn is not used: on an NVIDIA H200 host, ranks as Workers that each loaded Dawn
 * (a Node-API addon) never got through their first kernel, while the built-in implementation
 * works there. `auto` picks the built-in one; an explicit `dawn` is refused.
 */
export async function openDevice(options: OpenDeviceOptions = {}): Promise<Gpu> {
  const choice = resolveGpuChoice(options.gpu);
  if (choice === "dawn" && inWorker()) {
    throw new Error(
      'Cannot use gpu "dawn" inside a Worker (Dawn hangs there): run one process per rank (cli/launch.ts) or use gpu "deno"',
    );
  }
  const powerPreference = options.powerPreference ?? "high-performance";
  let impl: GpuImplementation;
  let adapter: GPUAdapter | null = null;
  if (choice === "auto" && !inWorker()) {
    adapter = await requestAdapter("dawn", powerPreference);
    impl = "dawn";
    if (!adapter || adapter.info.isFallbackAdapter) {
      adapter = await requestAdapter("deno", powerPreference);
      impl = "deno";
    }
  } else {
    impl = choice === "auto" ? "deno" : choice;
    adapter = await requestAdapter(impl, powerPreference);
  }
  if (!adapter) {
    throw new Error(`No WebGPU adapter found (gpu: "${choice}"): ${NO_ADAPTER_HELP}`);
  }
  const features = USEFUL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const key of LIMIT_KEYS) {
    const value = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof value === "number") requiredLimits[key] = value;
  }
  const device = await adapter.requestDevice({
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits,
  });
  device.addEventListener("uncapturederror", (e) => {
    console.error(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  const nanFill = options.nanFill ?? envValue(NAN_FILL_ENV) === "1";
  const pool = new BufferPool(device, { nanFill });
  const info = adapter.info;
  return {
    device,
    implementation: impl,
    adapterName: info.description || info.device || info.vendor || "unknown adapter",
    isFallbackAdapter: info.isFallbackAdapter ?? false,
    features: new Set(device.features as unknown as Iterable<string>),
    limits: device.limits,
    pool,
    kernels: new KernelCache(device),
    commands: new CommandQueue(device, pool),
    destroy() {
      pool.clear();
      device.destroy();
    },
  };
}

/** Limits worth raising to the adapter's maximum for compute work. */
const LIMIT_KEYS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBuffersPerShaderStage",
  "maxBindGroups",
  "maxBindingsPerBindGroup",
  "maxUniformBufferBindingSize",
] as const;

/**
 * Recording GPU work: dispatches go into one pending command encoder that is submitted in
 * batches, so a training step costs a few submits instead of hundreds. Buffers released while
 * work that reads them is still unsubmitted go back to the pool only after the submit.
 * @module
 */
import type { BufferPool } from "./pool.ts";
import { type BindingValue, type Kernel, packUniforms } from "./kernel.ts";
import { Tensor } from "./tensor.ts";
import type { GpuProfiler } from "./profiler.ts";

/** A dispatch: what to bind by WGSL name, and how many workgroups to launch. */
export interface DispatchOptions {
  /** Tensors, buffers or uniform values by WGSL variable name. */
  bindings: Record<string, BindingValue>;
  /** Workgroup counts in x, y, z (y and z default to 1). */
  workgroups: readonly [number, number?, number?];
  /** Label for the profiler; default: the kernel key. */
  label?: string;
}

/**
 * Workgroup counts covering `n` invocations of `size`-wide workgroups: along x up to the
 * per-dimension limit, then y. Kernels recover the flat index as `gid.x + gid.y·groups.x·size`.
 */
export function linearWorkgroups(
  n: number,
  size: number,
  maxPerDimension = 65535,
): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= maxPerDimension) return [groups, 1];
  const y = Math.ceil(groups / maxPerDimension);
  return [Math.ceil(groups / y), y];
}

/** Records dispatches and copies for one device and submits them in batches. */
export class CommandQueue {
  #encoder: GPUCommandEncoder | undefined;
  #afterSubmit: GPUBuffer[] = [];
  #pendingDispatches = 0;
  /** When set, every dispatch is timed with GPU timestamps. */
  profiler: GpuProfiler | undefined;
  /** Dispatches after which the pending work is submitted on its own. */
  autoSubmitEvery = 256;

  /** A queue recording work for `device`, releasing buffers into `pool`. */
  constructor(readonly device: GPUDevice, readonly pool: BufferPool) {}

  /** The pending encoder, created on first use. */
  get encoder(): GPUCommandEncoder {
    this.#encoder ??= this.device.createCommandEncoder();
    return this.#encoder;
  }

  /** True while recorded work waits for {@linkcode submit}. */
  get hasPendingWork(): boolean {
    return this.#encoder !== undefined;
  }

  /**
   * Returns a tensor's buffer to the pool. Recorded work may still use it, so until the next
   * submit it only serves GPU-written outputs, never host writes (see `BufferPool.acquire`).
   */
  releaseBuffer(buffer: GPUBuffer): void {
    this.pool.release(buffer, this.#encoder !== undefined);
  }

  /** Records one compute dispatch. */
  dispatch(kernel: Kernel, options: DispatchOptions): void {
    const [x, y = 1, z = 1] = options.workgroups;
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0 || n > maxGroups) {
        throw new Error(
          `Invalid workgroup count ${n} for ${kernel.key}: must be an integer in [0, ${maxGroups}]`,
        );
      }
    }
    if (x * y * z === 0) return;
    const groups: GPUBindGroupEntry[][] = kernel.layouts.map(() => []);
    for (const [name, binding] of kernel.bindings) {
      const value = options.bindings[name];
      if (value === undefined) {
        throw new Error(`Missing binding "${name}" for kernel ${kernel.key}`);
      }
      let resource: GPUBufferBinding;
      if (value instanceof Tensor) resource = this.#tensorBinding(kernel, name, value);
      else if (isGpuBuffer(value)) resource = { buffer: value };
      else {
        if (binding.kind !== "uniform") {
          throw new Error(
            `Binding "${name}" of ${kernel.key} is storage: pass a Tensor or GPUBuffer`,
          );
        }
        const data = packUniforms(kernel, binding, value);
        const buffer = this.pool.acquire(
          data.byteLength,
          GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          false,
        );
        this.device.queue.writeBuffer(buffer, 0, data);
        this.#afterSubmit.push(buffer);
        resource = { buffer };
      }
      groups[binding.group].push({ binding: binding.binding, resource });
    }
    for (const name of Object.keys(options.bindings)) {
      if (!kernel.bindings.has(name)) {
        const known = [...kernel.bindings.keys()].join(", ");
        throw new Error(`Unknown binding "${name}" for kernel ${kernel.key}: it binds [${known}]`);
      }
    }
    const encoder = this.encoder;
    const timestampWrites = this.profiler?.passTimestamps(options.label ?? kernel.key);
    const pass = encoder.beginComputePass(timestampWrites ? { timestampWrites } : {});
    pass.setPipeline(kernel.pipeline);
    groups.forEach((entries, g) =>
      pass.setBindGroup(g, this.device.createBindGroup({ layout: kernel.layouts[g], entries }))
    );
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    if (++this.#pendingDispatches >= this.autoSubmitEvery) this.submit();
  }

  /**
   * A tensor's binding: its own bytes only (not the pool bucket's slack), at its offset if it
   * is a view; both checked against the device limits so the error names the tensor.
   */
  #tensorBinding(kernel: Kernel, name: string, t: Tensor): GPUBufferBinding {
    const limits = this.device.limits;
    const size = t.bindingSize, offset = t.byteOffset;
    if (size > limits.maxStorageBufferBindingSize) {
      throw new Error(
        `Binding "${name}" of ${kernel.key}: tensor [${
          t.shape.join(", ")
        }] spans ${size} bytes, over the device's maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize} (process it in row chunks)`,
      );
    }
    if (offset % limits.minStorageBufferOffsetAlignment !== 0) {
      throw new Error(
        `Binding "${name}" of ${kernel.key}: view [${
          t.shape.join(", ")
        }] starts at byte ${offset}, not a multiple of minStorageBufferOffsetAlignment ${limits.minStorageBufferOffsetAlignment}`,
      );
    }
    return { buffer: t.buffer, offset, size };
  }

  /** Records a buffer-to-buffer copy of `byteLength` bytes. */
  copy(
    src: GPUBuffer,
    srcOffset: number,
    dst: GPUBuffer,
    dstOffset: number,
    byteLength: number,
  ): void {
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, byteLength);
  }

  /** Submits everything recorded so far. */
  submit(): void {
    if (!this.#encoder) return;
    this.profiler?.resolve(this.#encoder);
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = undefined;
    this.#pendingDispatches = 0;
    this.pool.idle();
    for (const b of this.#afterSubmit) this.pool.release(b);
    this.#afterSubmit = [];
  }

  /** Submits and waits until the GPU has finished all submitted work. */
  async finish(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
  }
}

function isGpuBuffer(value: BindingValue): value is GPUBuffer {
  return typeof (value as GPUBuffer).mapAsync === "function";
}

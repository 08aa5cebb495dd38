/**
 * Host time per WebGPU API method, for benchmarks: wraps the methods (and a few property
 * getters) on the prototypes of one implementation's device, queue, encoder, pass and buffer
 * classes, so every object of that implementation is timed while installed, and everything is
 * restored by {@linkcode ApiTracer.uninstall}. A method returning a promise also records the
 * time until the promise settles (the wait for the GPU or its event pump).
 * @module
 */
import type { Gpu } from "../mod.ts";

/** Time spent in one API method. */
export interface MethodStats {
  /** Calls. */
  calls: number;
  /** Host milliseconds inside the call (the synchronous part). */
  hostMs: number;
  /** Milliseconds from the call's return until its promise settled (methods returning one). */
  awaitMs: number;
}

/** Methods timed per class; getters are named `get name`. */
const TRACED: Record<string, string[]> = {
  GPUDevice: [
    "createBindGroup",
    "createBuffer",
    "createCommandEncoder",
    "createBindGroupLayout",
    "createPipelineLayout",
    "createShaderModule",
    "createComputePipelineAsync",
    "createQuerySet",
    "pushErrorScope",
    "popErrorScope",
    "get limits",
    "get queue",
  ],
  GPUQueue: ["writeBuffer", "submit", "onSubmittedWorkDone"],
  GPUCommandEncoder: ["beginComputePass", "copyBufferToBuffer", "resolveQuerySet", "finish"],
  GPUComputePassEncoder: ["setPipeline", "setBindGroup", "dispatchWorkgroups", "end"],
  GPUBuffer: ["mapAsync", "getMappedRange", "unmap", "destroy", "get size", "get usage"],
};

/** Times the WebGPU calls of one implementation and of a few toolkit entry points. */
export class ApiTracer {
  /** Stats by `Class.method` (toolkit methods as `CommandQueue.dispatch` etc.). */
  readonly stats = new Map<string, MethodStats>();
  #restore: (() => void)[] = [];

  /** Wraps the prototypes of `gpu`'s implementation and `gpu.commands`' entry points. */
  install(gpu: Gpu): this {
    if (this.#restore.length > 0) throw new Error("ApiTracer: already installed");
    const device = gpu.device;
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.end();
    encoder.finish(); // never submitted: only its class is wanted
    const buffer = device.createBuffer({ size: 4, usage: GPUBufferUsage.COPY_DST });
    const samples: Record<string, object> = {
      GPUDevice: device,
      GPUQueue: device.queue,
      GPUCommandEncoder: encoder,
      GPUComputePassEncoder: pass,
      GPUBuffer: buffer,
    };
    for (const [cls, members] of Object.entries(TRACED)) {
      for (const member of members) this.#wrapInherited(samples[cls], cls, member);
    }
    buffer.destroy();
    // toolkit entry points: own properties of these instances, deleted again on uninstall
    for (const name of ["dispatch", "submit", "finish"] as const) {
      this.#wrapOwn(gpu.commands, `CommandQueue.${name}`, name);
    }
    this.#wrapOwn(gpu.kernels, "KernelCache.get", "get");
    return this;
  }

  /** Forgets the counts so far. */
  reset(): void {
    this.stats.clear();
  }

  /** Restores every wrapped method. */
  uninstall(): void {
    for (const undo of this.#restore.reverse()) undo();
    this.#restore = [];
  }

  #stat(label: string): MethodStats {
    let s = this.stats.get(label);
    if (!s) this.stats.set(label, s = { calls: 0, hostMs: 0, awaitMs: 0 });
    return s;
  }

  #timed<F extends (...args: never[]) => unknown>(label: string, fn: F): F {
    const stat = this.#stat.bind(this, label);
    return function (this: unknown, ...args: never[]) {
      const t0 = performance.now();
      let result: unknown;
      try {
        result = fn.apply(this, args);
        return result;
      } finally {
        const s = stat(), t1 = performance.now();
        s.calls++;
        s.hostMs += t1 - t0;
        if (result && typeof (result as Promise<unknown>).then === "function") {
          const settled = () => void (s.awaitMs += performance.now() - t1);
          (result as Promise<unknown>).then(settled, settled);
        }
      }
    } as F;
  }

  /** Wraps `member` where `sample`'s prototype chain defines it (a getter: `get name`). */
  #wrapInherited(sample: object, cls: string, member: string): void {
    const [isGetter, name] = member.startsWith("get ") ? [true, member.slice(4)] : [false, member];
    let owner: object | null = Object.getPrototypeOf(sample);
    while (owner && !Object.hasOwn(owner, name)) owner = Object.getPrototypeOf(owner);
    if (!owner) return; // not on the prototype (e.g. an own data property): nothing to time
    const original = Object.getOwnPropertyDescriptor(owner, name)!;
    if (!original.configurable) return;
    const label = `${cls}.${name}`;
    if (isGetter) {
      if (!original.get) return;
      Object.defineProperty(owner, name, { ...original, get: this.#timed(label, original.get) });
    } else {
      if (typeof original.value !== "function") return;
      Object.defineProperty(owner, name, {
        ...original,
        value: this.#timed(label, original.value),
      });
    }
    const target = owner;
    this.#restore.push(() => Object.defineProperty(target, name, original));
  }

  #wrapOwn<T extends object>(target: T, label: string, name: keyof T & string): void {
    const fn = target[name] as (...args: never[]) => unknown;
    Object.defineProperty(target, name, {
      value: this.#timed(label, fn.bind(target) as typeof fn),
      configurable: true,
      writable: true,
    });
    this.#restore.push(() => delete (target as Record<string, unknown>)[name]);
  }
}

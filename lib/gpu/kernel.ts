/**
 * Compute kernels: WGSL text → pipeline, with bind group layouts and workgroup size read from
 * the WGSL itself by `wgsl_reflect`, a pipeline cache keyed by what is baked into the shader,
 * and `dispatch`, which binds tensors and uniform values by their WGSL names.
 * @module
 */
import { WgslReflect } from "../deps.ts";
import type { Tensor } from "./tensor.ts";

/** A binding of an entry point as the WGSL declares it. */
export interface KernelBinding {
  /** WGSL variable name. */
  readonly name: string;
  /** `@group` index. */
  readonly group: number;
  /** `@binding` index. */
  readonly binding: number;
  /** Buffer binding type. */
  readonly kind: "uniform" | "storage" | "read-only-storage";
  /** Uniform struct members (name → byte offset and scalar type); empty for storage. */
  readonly members: ReadonlyMap<string, { offset: number; type: string }>;
  /** Byte size of a uniform struct (rounded up to 16). */
  readonly uniformSize: number;
  /**
   * Fewest bytes a storage binding may span: one element of a runtime-sized array (16 for
   * `array<vec4<f32>>`), else the variable's size. WebGPU rejects smaller bindings.
   */
  readonly minBindingBytes: number;
}

/** A compiled compute pipeline with everything derived from its WGSL. */
export interface Kernel {
  /** Full cache key (spec key, entry point, constants). */
  readonly key: string;
  /** The compiled pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** Bind group layouts, one per `@group`; uniform bindings take a dynamic offset. */
  readonly layouts: readonly GPUBindGroupLayout[];
  /**
   * Bindings of each `@group` in `@binding` order: the order of a group's entries and of its
   * dynamic offsets (one per uniform binding).
   */
  readonly groups: readonly (readonly KernelBinding[])[];
  /** Bindings of the entry point by WGSL name. */
  readonly bindings: ReadonlyMap<string, KernelBinding>;
  /** `@workgroup_size` of the entry point. */
  readonly workgroupSize: readonly [number, number, number];
}

/** What a kernel is built from. `key` must name exactly what is baked into `code`. */
export interface KernelSpec {
  /** Cache key: every parameter that changes the generated WGSL text, e.g. `matmul:bm=128,bn=128`. */
  key: string;
  /** WGSL text, or a function producing it (called only on a cache miss). */
  code: string | (() => string | Promise<string>);
  /** Entry point; default: the only `@compute` function. */
  entryPoint?: string;
  /** Values for WGSL `override` constants (part of the cache key). */
  constants?: Record<string, number>;
}

/** The parts of wgsl_reflect's output used here (the package ships no typings for its ESM entry). */
interface ReflectedType {
  name: string;
  size: number;
  members?: { name: string; offset: number; type: { name: string } }[];
}
interface Reflection {
  entry: {
    compute: {
      name: string;
      workgroupSize?: number[];
      resources: {
        name: string;
        group: number;
        binding: number;
        access: string;
        type?: { stride?: number; size?: number };
      }[];
    }[];
  };
  uniforms: (ReflectedType & { name: string; size: number })[];
}

/** Reflects the bindings and workgroup size of one compute entry point. */
export function reflectEntry(code: string, entryPoint?: string): {
  entryPoint: string;
  workgroupSize: [number, number, number];
  bindings: KernelBinding[];
} {
  const reflect = new WgslReflect(code) as unknown as Reflection;
  const entries = reflect.entry.compute;
  const entry = entryPoint === undefined
    ? entries.length === 1 ? entries[0] : undefined
    : entries.find((e) => e.name === entryPoint);
  if (!entry) {
    const names = entries.map((e) => e.name).join(", ");
    throw new Error(
      `Compute entry point "${entryPoint ?? "(only one)"}" not found: the shader has [${names}]`,
    );
  }
  // wgsl_reflect lists a uniform variable with its struct's size and members.
  const uniforms = new Map(reflect.uniforms.map((u) => [u.name, u]));
  const bindings = entry.resources.map((r): KernelBinding => {
    const uniform = uniforms.get(r.name);
    if (uniform) {
      const members = new Map<string, { offset: number; type: string }>();
      for (const m of (uniform.members ?? [])) {
        members.set(m.name, { offset: m.offset, type: m.type.name });
      }
      return {
        name: r.name,
        group: r.group,
        binding: r.binding,
        kind: "uniform",
        members,
        uniformSize: Math.ceil(uniform.size / 16) * 16,
        minBindingBytes: uniform.size,
      };
    }
    return {
      name: r.name,
      group: r.group,
      binding: r.binding,
      kind: r.access === "read" ? "read-only-storage" : "storage",
      members: new Map(),
      uniformSize: 0,
      minBindingBytes: Math.max(4, r.type?.size || r.type?.stride || 4),
    };
  });
  const ws = entry.workgroupSize ?? [1, 1, 1];
  return {
    entryPoint: entry.name,
    workgroupSize: [ws[0] ?? 1, ws[1] ?? 1, ws[2] ?? 1],
    bindings,
  };
}

/** Builds and caches compute pipelines for one device. */
export class KernelCache {
  #cache = new Map<string, Promise<Kernel>>();
  /** A cache for pipelines of `device`. */
  constructor(readonly device: GPUDevice) {}

  /** Number of distinct pipelines built so far. */
  get size(): number {
    return this.#cache.size;
  }

  /** The kernel for `spec`, built on first use. */
  get(spec: KernelSpec): Promise<Kernel> {
    const constants = spec.constants ?? {};
    const key = `${spec.key}|${spec.entryPoint ?? ""}|${JSON.stringify(constants)}`;
    let kernel = this.#cache.get(key);
    if (!kernel) {
      kernel = this.#build(key, spec, constants);
      this.#cache.set(key, kernel);
      kernel.catch(() => this.#cache.delete(key));
    }
    return kernel;
  }

  async #build(key: string, spec: KernelSpec, constants: Record<string, number>): Promise<Kernel> {
    const code = typeof spec.code === "string" ? spec.code : await spec.code();
    const { entryPoint, workgroupSize, bindings } = reflectEntry(code, spec.entryPoint);
    const device = this.device;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code, label: spec.key });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      await device.popErrorScope();
      const lines = code.split("\n");
      const detail = errors.map((m) =>
        `line ${m.lineNum}: ${m.message}\n    ${lines[m.lineNum - 1]?.trim() ?? ""}`
      ).join("\n");
      throw new Error(`WGSL compilation failed for ${spec.key}:\n${detail}`);
    }
    const groupCount = Math.max(-1, ...bindings.map((b) => b.group)) + 1;
    const groups = Array.from(
      { length: groupCount },
      (_, g) => bindings.filter((b) => b.group === g).sort((a, b) => a.binding - b.binding),
    );
    // Uniforms bind with a dynamic offset, so one bind group serves every slice of a shared
    // uniform buffer (see CommandQueue's uniform arena and bind group cache).
    const layouts = groups.map((members, g) =>
      device.createBindGroupLayout({
        label: `${spec.key} group ${g}`,
        entries: members.map((b) => ({
          binding: b.binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.kind, hasDynamicOffset: b.kind === "uniform" },
        })),
      })
    );
    const pipeline = await device.createComputePipelineAsync({
      label: spec.key,
      layout: device.createPipelineLayout({ bindGroupLayouts: layouts }),
      compute: { module, entryPoint, constants },
    });
    const error = await device.popErrorScope();
    if (error) throw new Error(`Pipeline creation failed for ${spec.key}: ${error.message}`);
    return {
      key,
      pipeline,
      layouts,
      groups,
      bindings: new Map(bindings.map((b) => [b.name, b])),
      workgroupSize,
    };
  }
}

/** Values for a uniform struct, by member name. */
export type UniformValues = Record<string, number>;
/** What may be bound to a name: a tensor or raw buffer (storage), or uniform values. */
export type BindingValue = Tensor | GPUBuffer | UniformValues;

/** Writes uniform values into the struct layout reflected from the WGSL. */
export function packUniforms(
  kernel: Kernel,
  binding: KernelBinding,
  values: UniformValues,
): ArrayBuffer {
  const data = new ArrayBuffer(binding.uniformSize);
  writeUniforms(kernel, binding, { values, view: new DataView(data), at: 0 });
  return data;
}

/** Writes uniform values into `view` from byte `at`, in the struct layout of `binding`. */
export function writeUniforms(
  kernel: Kernel,
  binding: KernelBinding,
  target: { values: UniformValues; view: DataView; at: number },
): void {
  const { values, view, at } = target;
  for (const [name, member] of binding.members) {
    const value = values[name];
    if (value === undefined) {
      throw new Error(`Missing uniform ${binding.name}.${name} for kernel ${kernel.key}`);
    }
    const offset = at + member.offset;
    if (member.type === "f32") view.setFloat32(offset, value, true);
    else if (member.type === "u32") {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new Error(
          `Uniform ${binding.name}.${name} = ${value} is not a u32 (kernel ${kernel.key})`,
        );
      }
      view.setUint32(offset, value, true);
    } else if (member.type === "i32") view.setInt32(offset, value, true);
    else {throw new Error(
        `Uniform member ${binding.name}.${name} has unsupported type ${member.type}`,
      );}
  }
  for (const name of Object.keys(values)) {
    if (!binding.members.has(name)) {
      throw new Error(`Unknown uniform ${binding.name}.${name} for kernel ${kernel.key}`);
    }
  }
}

/**
 * Bind groups reused across dispatches and steps: a training step binds the same pooled
 * buffers at the same offsets again and again (uniforms bind one shared buffer with dynamic
 * offsets), so most `createBindGroup` calls can be answered from a cache keyed by the layout
 * and each entry's buffer, offset and size.
 *
 * Buffers are keyed by object identity, never by a reusable handle: a destroyed buffer's
 * entries can never be hit again (binding a destroyed buffer is an error anyway) and simply
 * age out of the least-recently-used order.
 * @module
 */

/** Default number of bind groups kept. */
export const BIND_GROUP_CACHE_SIZE = 8192;

/** Least-recently-used cache of bind groups of one device. */
export class BindGroupCache {
  readonly #ids = new WeakMap<object, number>();
  #nextId = 0;
  readonly #groups = new Map<string, GPUBindGroup>();
  /** Lookups answered from the cache. */
  hits = 0;
  /** Lookups that created a bind group. */
  misses = 0;

  /** A cache for `device` keeping at most `capacity` bind groups. */
  constructor(readonly device: GPUDevice, readonly capacity = BIND_GROUP_CACHE_SIZE) {}

  /** Bind groups held now. */
  get size(): number {
    return this.#groups.size;
  }

  /** The bind group of `layout` with `entries` (buffer bindings with explicit offset and size). */
  get(
    layout: GPUBindGroupLayout,
    entries: readonly { binding: number; resource: GPUBufferBinding }[],
  ): GPUBindGroup {
    let key = String(this.#id(layout));
    for (const e of entries) {
      const r = e.resource;
      key += `|${e.binding}:${this.#id(r.buffer)}@${r.offset ?? 0}+${r.size ?? "all"}`;
    }
    const hit = this.#groups.get(key);
    if (hit) {
      this.hits++;
      this.#groups.delete(key); // re-insert: most recently used last
      this.#groups.set(key, hit);
      return hit;
    }
    this.misses++;
    const group = this.device.createBindGroup({ layout, entries: entries as GPUBindGroupEntry[] });
    this.#groups.set(key, group);
    if (this.#groups.size > this.capacity) {
      this.#groups.delete(this.#groups.keys().next().value!);
    }
    return group;
  }

  #id(object: object): number {
    let id = this.#ids.get(object);
    if (id === undefined) this.#ids.set(object, id = this.#nextId++);
    return id;
  }
}

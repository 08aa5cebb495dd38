/**
 * A small seeded random generator with a savable state (mulberry32: 32-bit state, period
 * 2³²), and a hash that derives independent streams from a seed and stream ids (epoch,
 * parameter index…). Everything random in training goes through it, so a run is reproducible
 * from its seed and resumes exactly from a saved state.
 * @module
 */

/** Mixes integers into one 32-bit seed (murmur3's finalizer over a running hash). */
export function deriveSeed(seed: number, ...stream: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const s of stream) {
    h = Math.imul(h ^ (s >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Seeded generator of uniform and normal numbers. */
export class Rng {
  #state: number;

  /** A generator started from `seed` (any integer; taken modulo 2³²). */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Invalid seed ${seed}: must be an integer`);
    this.#state = seed >>> 0;
  }

  /** The 32-bit state; `new Rng(rng.state)` continues exactly where `rng` is. */
  get state(): number {
    return this.#state;
  }

  /** A uint32. */
  nextU32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), n ≤ 2³², without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) {
      throw new Error(`Rng.int(${n}): n must be an integer in [1, 2^32]`);
    }
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Standard normal (Box–Muller; one draw per call, two uniforms consumed). */
  normal(): number {
    const u = 1 - this.float(); // (0, 1]
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `a` in place (Fisher–Yates). */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

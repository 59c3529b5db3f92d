/**
 * Seeded pseudo-random numbers for the simulator: sfc32 (Chris Doty-Humphrey's Small Fast
 * Counting generator), seeded through splitmix32. Same seed, same sequence, on every
 * platform; no global state. Not for cryptography.
 */

export interface Prng {
  /** Uniform in [0, 1). */
  next: () => number
  /** Uniform integer in [0, n). */
  int: (n: number) => number
  /** An independent generator derived from this one's seed and `label`. */
  fork: (label: string) => Prng
}

function splitmix32 (state: number): () => number {
  let s = state >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/** FNV-1a of a label, to derive sub-seeds. */
function hashLabel (label: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** A generator for a 32-bit seed (other numbers are reduced to 32 bits). */
export function createPrng (seed: number): Prng {
  const seed32 = (Number.isFinite(seed) ? Math.trunc(seed) : 0) >>> 0
  const mix = splitmix32(seed32)
  let a = mix(); let b = mix(); let c = mix(); let d = mix()
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) >>> 0
    return t
  }
  for (let i = 0; i < 12; i++) u32()
  return {
    next: () => u32() / 4294967296,
    int: (n: number) => Math.floor((u32() / 4294967296) * n),
    fork: (label: string) => createPrng((seed32 ^ hashLabel(label)) >>> 0)
  }
}

/** Fisher–Yates shuffle in place. */
export function shuffle<T> (items: T[], prng: Prng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = prng.int(i + 1)
    const t = items[i]; items[i] = items[j]; items[j] = t
  }
  return items
}

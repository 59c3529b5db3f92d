/**
 * A one-pass reader for the canonical DAG-CBOR that envelopes and frames use: it decodes
 * and checks canonical form at once (shortest heads, definite lengths, map keys sorted
 * length-first then bytewise and distinct, valid UTF-8), so the hot path needs neither a
 * lenient decode plus a re-encode to compare nor a second encode to get the unsigned bytes.
 *
 * It accepts a subset: unsigned integers up to 2^53 − 1, byte and text strings, arrays,
 * maps with text keys, true and false. Anything else — including every non-canonical
 * encoding — makes it return undefined, and the caller falls back to the general decoder,
 * which then classifies the input exactly (malformed, non-canonical, bad-field). So the
 * fast path can only accept what the slow path accepts, with the same values.
 */

const FAIL = Symbol('not fast-path CBOR')
const MAX_DEPTH = 16
const utf8 = new TextDecoder('utf-8', { fatal: true })
/**
 * ASCII strings of up to 7 characters, keyed by length and bytes (7 bits each): below 2^52,
 * and the keys of each length are a range of their own, [len · 128^len, (len + 1) · 128^len).
 */
const shortStrings = new Map<number, string>()
/** Per repeatedText slot: the bytes and the string of the last value read (validated then). */
const lastBytes: Array<Uint8Array | undefined> = []
const lastText: string[] = []

/** The envelope keys whose text values usually repeat between envelopes, and their slots. */
function repeatSlot (k: string): number {
  switch (k) {
    case 'from': return 0
    case 'net': return 1
    case 'topic': return 2
    case 'ct': return 3
    case 'type': return 4
    case 'mode': return 5
    default: return -1
  }
}

class Reader {
  b: Uint8Array
  o: number
  end: number

  constructor (b: Uint8Array, start: number = 0) {
    this.b = b
    this.o = start
    this.end = b.length
  }

  /** Starts over on `b` (a reader kept for reuse: one object fewer per map read). */
  reset (b: Uint8Array): void {
    this.b = b
    this.o = 0
    this.end = b.length
    this.latin1 = undefined
  }

  /** One head: [major type, argument], rejecting non-shortest and indefinite forms. */
  head (): number {
    const b = this.b
    if (this.o >= this.end) throw FAIL
    const ib = b[this.o++]
    const ai = ib & 31
    let v: number
    if (ai < 24) v = ai
    else if (ai === 24) {
      if (this.o + 1 > this.end) throw FAIL
      v = b[this.o++]
      if (v < 24) throw FAIL
    } else if (ai === 25) {
      if (this.o + 2 > this.end) throw FAIL
      v = (b[this.o] << 8) | b[this.o + 1]
      this.o += 2
      if (v < 0x100) throw FAIL
    } else if (ai === 26) {
      if (this.o + 4 > this.end) throw FAIL
      v = ((b[this.o] << 24) >>> 0) + (b[this.o + 1] << 16) + (b[this.o + 2] << 8) + b[this.o + 3]
      this.o += 4
      if (v < 0x10000) throw FAIL
    } else if (ai === 27) {
      if (this.o + 8 > this.end) throw FAIL
      const hi = ((b[this.o] << 24) >>> 0) + (b[this.o + 1] << 16) + (b[this.o + 2] << 8) + b[this.o + 3]
      const lo = ((b[this.o + 4] << 24) >>> 0) + (b[this.o + 5] << 16) + (b[this.o + 6] << 8) + b[this.o + 7]
      this.o += 8
      if (hi === 0 || hi > 0x1fffff) throw FAIL // below 2^32 is not shortest; above 2^53 − 1 is not safe
      v = hi * 0x100000000 + lo
    } else throw FAIL
    this.major = ib >> 5
    return v
  }

  major = 0
  /** A Buffer view of `b`, made when first needed (for latin1 slices). */
  private latin1: Buffer | undefined

  text (len: number): string {
    if (len > this.end - this.o) throw FAIL
    const start = this.o
    this.o += len
    const b = this.b
    // Map keys and short values repeat in every envelope: intern them by their bytes.
    if (len <= 7) {
      let k = len
      let ascii = true
      for (let i = start; i < start + len; i++) {
        const c = b[i]
        if (c >= 0x80) { ascii = false; break }
        k = k * 128 + c
      }
      if (ascii) {
        let v = shortStrings.get(k)
        if (v === undefined) {
          v = String.fromCharCode.apply(null, b.subarray(start, start + len) as unknown as number[])
          if (shortStrings.size < 4096) shortStrings.set(k, v)
        }
        return v
      }
    }
    if (len <= 256) {
      let ascii = true
      for (let i = start; i < start + len; i++) if (b[i] >= 0x80) { ascii = false; break }
      // ASCII is its own latin1: Buffer's native slice is ~5× faster than fromCharCode here.
      if (ascii) return (this.latin1 ??= Buffer.from(b.buffer, b.byteOffset, b.length)).toString('latin1', start, start + len)
    }
    try { return utf8.decode(b.subarray(start, start + len)) } catch { throw FAIL }
  }

  /**
   * A text value that usually repeats from one envelope to the next (`from`, `net`, `topic`,
   * `ct`, `type`): compared with the bytes of the last one read under the same `slot` and
   * then returned as the same string — no new string, and later comparisons and Set lookups
   * of it are by identity and a cached hash. Anything else is read as by `item`.
   */
  repeatedText (slot: number): unknown {
    const b = this.b
    if (this.o >= this.end || (b[this.o] >> 5) !== 3) return this.item(1)
    const len = this.head()
    if (len > this.end - this.o) throw FAIL
    const start = this.o
    const last = lastBytes[slot]
    if (last !== undefined && last.length === len) {
      let i = 0
      while (i < len && last[i] === b[start + i]) i++
      if (i === len) { this.o += len; return lastText[slot] }
    }
    const v = this.text(len)
    if (len <= 256) { lastBytes[slot] = b.slice(start, start + len); lastText[slot] = v }
    return v
  }

  item (depth: number): unknown {
    const v = this.head()
    switch (this.major) {
      case 0: return v
      case 2: {
        if (v > this.end - this.o) throw FAIL
        // A plain Uint8Array view (no copy), even when the input is a Buffer.
        const out = new Uint8Array(this.b.buffer, this.b.byteOffset + this.o, v)
        this.o += v
        return out
      }
      case 3: return this.text(v)
      case 4: {
        if (depth >= MAX_DEPTH || v > this.end - this.o) throw FAIL
        const out: unknown[] = new Array(v)
        for (let i = 0; i < v; i++) out[i] = this.item(depth + 1)
        return out
      }
      case 5: {
        if (depth >= MAX_DEPTH || v > this.end - this.o) throw FAIL
        const out: Record<string, unknown> = {}
        let prevStart = -1
        let prevLen = 0
        for (let i = 0; i < v; i++) {
          const keyStart = this.o
          const k = this.key()
          const keyLen = this.o - keyStart
          if (prevStart >= 0 && !keyAfter(this.b, prevStart, prevLen, keyStart, keyLen)) throw FAIL
          prevStart = keyStart
          prevLen = keyLen
          out[k] = this.item(depth + 1)
        }
        return out
      }
      case 7:
        if (v === 20) return false
        if (v === 21) return true
        throw FAIL
      default: throw FAIL
    }
  }

  /**
   * Steps over one item as `item` reads it (the same heads, lengths and nesting refused)
   * without making its value: text is not decoded, so its UTF-8 is not checked.
   */
  skip (depth: number): void {
    const v = this.head()
    switch (this.major) {
      case 0: return
      case 2: case 3:
        if (v > this.end - this.o) throw FAIL
        this.o += v
        return
      case 4: case 5: {
        if (depth >= MAX_DEPTH || v > this.end - this.o) throw FAIL
        const n = this.major === 5 ? 2 * v : v
        for (let i = 0; i < n; i++) this.skip(depth + 1)
        return
      }
      case 7:
        if (v === 20 || v === 21) return
        throw FAIL
      default: throw FAIL
    }
  }

  key (): string {
    const len = this.head()
    if (this.major !== 3) throw FAIL
    const k = this.text(len)
    // Assigning `__proto__` would set the prototype; the general decoder handles it.
    if (k === '__proto__') throw FAIL
    return k
  }
}

/** Canonical order: shorter encoded key first, then bytewise; equal keys are refused. */
function keyAfter (b: Uint8Array, aStart: number, aLen: number, bStart: number, bLen: number): boolean {
  if (aLen !== bLen) return bLen > aLen
  for (let i = 0; i < aLen; i++) {
    const x = b[aStart + i]
    const y = b[bStart + i]
    if (x !== y) return y > x
  }
  return false
}

/** Decodes one canonical item filling all of `bytes`, or undefined (use the general decoder). */
export function decodeCanonical (bytes: Uint8Array): unknown {
  try {
    const r = new Reader(bytes)
    const v = r.item(0)
    return r.o === bytes.length ? v : undefined
  } catch (err) {
    if (err === FAIL) return undefined
    throw err
  }
}

export interface CanonicalMap {
  /** The map without the `omit` entries. */
  readonly value: Record<string, unknown>
  /** The `omit` entries that were present. */
  readonly omitted: Record<string, unknown>
  /** The same map's canonical encoding without the `omit` entries (what is hashed for the id). */
  readonly without: Uint8Array
}

/**
 * Decodes a canonical top-level map and also returns its encoding with the entries named
 * in `omit` cut out (the entry count lowered to match), without encoding anything anew.
 * The entries go into `into` when given (an empty object of the caller's making).
 */
export function decodeCanonicalMap (bytes: Uint8Array, omit: readonly string[], into?: Record<string, unknown>, known?: KnownKeys): CanonicalMap | undefined {
  try {
    const r = new Reader(bytes)
    const n = r.head()
    if (r.major !== 5 || n > bytes.length) return undefined
    const value: Record<string, unknown> = into ?? {}
    const omitted: Record<string, unknown> = {}
    const bodyStart = r.o
    let cut: number[] | undefined
    let prevStart = -1
    let prevLen = 0
    // The next known key that may follow, and whether the previous key was a known one.
    let next = 0
    let prevKnown = false
    for (let i = 0; i < n; i++) {
      const entryStart = r.o
      const j = known === undefined ? -1 : known.match(bytes, entryStart, next)
      let k: string
      if (j >= 0) {
        k = known!.names[j]
        r.o += known!.encoded[j].length
        next = j + 1
      } else k = r.key()
      const keyLen = r.o - entryStart
      // Two known keys in a row are in canonical order by construction (matched in order).
      if (prevStart >= 0 && !(j >= 0 && prevKnown) && !keyAfter(bytes, prevStart, prevLen, entryStart, keyLen)) return undefined
      prevKnown = j >= 0
      prevStart = entryStart
      prevLen = keyLen
      if (omit.includes(k)) {
        omitted[k] = r.item(1)
        ;(cut ??= []).push(entryStart, r.o)
      } else {
        const slot = repeatSlot(k)
        value[k] = slot >= 0 ? r.repeatedText(slot) : r.item(1)
      }
    }
    if (r.o !== bytes.length) return undefined
    if (cut === undefined) return { value, omitted, without: bytes }
    const kept = n - cut.length / 2
    let size = headSize(kept)
    let prev = bodyStart
    for (let j = 0; j < cut.length; j += 2) { size += cut[j] - prev; prev = cut[j + 1] }
    size += bytes.length - prev
    const out = new Uint8Array(size)
    let o = writeMapHead(out, kept)
    prev = bodyStart
    for (let j = 0; j < cut.length; j += 2) {
      out.set(bytes.subarray(prev, cut[j]), o)
      o += cut[j] - prev
      prev = cut[j + 1]
    }
    out.set(bytes.subarray(prev), o)
    return { value, omitted, without: out }
  } catch (err) {
    if (err === FAIL) return undefined
    throw err
  }
}

/**
 * A canonical top-level map decoded once, as the pattern for maps that repeat most of it
 * byte for byte (the envelopes of one batch: the same sender, network, topic, type, content
 * type, limits; a new timestamp and body). Per entry: where it starts, where its value starts
 * and ends, its key, its decoded value and how a map read against it treats the entry
 * (decodeMapLike).
 */
export class MapLayout {
  readonly bytes: Uint8Array
  /** Where the first entry starts (after the map head). */
  readonly bodyStart: number
  readonly starts: number[] = []
  readonly valueStarts: number[] = []
  readonly ends: number[] = []
  readonly keys: string[] = []
  readonly values: unknown[] = []
  /**
   * Per entry: SAME (the value repeats, taken as it is), SAME_COPY (repeats, an array of
   * strings, numbers and booleans: a copy of the layout's own), SAME_FRESH (repeats, another
   * object: decoded anew) or VARIES.
   */
  readonly kinds: number[] = []
  /** Per entry: its key's code in the layout's FieldStore (-1: none). */
  readonly codes: number[] = []
  readonly store: FieldStore | undefined

  /** `bytes` as a DataView (decodeMapLike compares four bytes at a time). */
  readonly view: DataView

  private constructor (bytes: Uint8Array, bodyStart: number, store: FieldStore | undefined) {
    this.bytes = bytes
    this.bodyStart = bodyStart
    this.store = store
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /**
   * The layout of `bytes`, a canonical map already decoded (and checked) into `value`;
   * entries named in `varies` may differ in the maps read against it. Undefined when
   * `bytes` is not a map the canonical reader takes. With a `store`, decodeMapLike puts the
   * entries whose keys it knows through it.
   */
  static of (bytes: Uint8Array, value: Record<string, unknown>, varies: ReadonlySet<string>, store?: FieldStore): MapLayout | undefined {
    try {
      const r = new Reader(bytes)
      const n = r.head()
      if (r.major !== 5) return undefined
      const layout = new MapLayout(bytes, r.o, store)
      for (let i = 0; i < n; i++) {
        layout.starts.push(r.o)
        const k = r.key()
        layout.valueStarts.push(r.o)
        r.item(1)
        layout.ends.push(r.o)
        layout.keys.push(k)
        layout.codes.push(store?.code(k) ?? -1)
        const v = value[k]
        if (varies.has(k)) {
          layout.values.push(v)
          layout.kinds.push(VARIES)
        } else if (v === null || typeof v !== 'object') {
          layout.values.push(v)
          layout.kinds.push(SAME)
        } else if (Array.isArray(v) && v.every(x => typeof x !== 'object')) {
          // The layout's own copy (the decoded map's array is its caller's, and may change).
          layout.values.push(v.slice())
          layout.kinds.push(SAME_COPY)
        } else {
          layout.values.push(v)
          layout.kinds.push(SAME_FRESH)
        }
      }
      return r.o === bytes.length ? layout : undefined
    } catch (err) {
      if (err === FAIL) return undefined
      throw err
    }
  }
}

/**
 * Stores of the keys a map usually holds, by code: `put(into, code(k), v)` is `into[k] = v`.
 * A store that names its property (`into.ts = v`) has one hidden class to follow at each
 * site, where `into[k] = v` with k varying goes through V8's generic keyed store every time
 * (≈ 2–3 % of a topic subscriber's main thread for the ~10 repeated entries of each leaf).
 */
export interface FieldStore {
  /** The code of key `k`, or -1 when `put` does not know it. */
  code: (k: string) => number
  put: (into: Record<string, unknown>, code: number, v: unknown) => void
}

const SAME = 0
const SAME_COPY = 1
const SAME_FRESH = 2
const VARIES = 3
/** The reader decodeMapLike reads changed values with (never re-entered). */
const likeReader = new Reader(new Uint8Array(0))
/**
 * A DataView of the buffer decodeMapLike last read a map in: the leaves of one batch frame
 * are views of one buffer, so one DataView serves them all. It keeps that buffer (one
 * frame's, or the socket read's it is a view of) alive until a map in another one is read.
 */
let likeBuffer: ArrayBufferLike | undefined
let likeView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0))

/** Whether the `n` bytes at `ao` in `a` are those at `bo` in `b`: four at a time, then the rest. */
function sameBytes (a: DataView, ao: number, b: DataView, bo: number, n: number): boolean {
  let i = 0
  for (; i + 4 <= n; i += 4) if (a.getInt32(ao + i) !== b.getInt32(bo + i)) return false
  for (; i < n; i++) if (a.getUint8(ao + i) !== b.getUint8(bo + i)) return false
  return true
}

/**
 * Reads the canonical map `bytes` against `layout`: true when it has the layout's entries in
 * the same order, each byte for byte the layout's except the values of VARIES entries, which
 * are read and checked for canonical form (heads, lengths, UTF-8) like any item. The entries
 * go into `into` in map order: a repeated primitive value is the layout's own (a string is
 * the same string), a repeated array of primitives (a direct message's `to`) a copy of the
 * layout's (new array, the same strings), any other repeated object is decoded anew (no
 * object shared between maps).
 * Whatever the layout's map passed (canonical form, field checks) the entries that repeat it
 * pass too; the caller checks the VARIES values. False when the map differs otherwise (or is
 * not canonical): `into` may then hold some entries, and the caller reads the map in full.
 */
export function decodeMapLike (bytes: Uint8Array, layout: MapLayout, into: Record<string, unknown>): boolean {
  const t = layout.bytes
  const end = bytes.length
  let o = layout.bodyStart
  if (o > end) return false
  for (let i = 0; i < o; i++) if (bytes[i] !== t[i]) return false
  const { starts, valueStarts, ends, keys, values, kinds, codes, store } = layout
  const tv = layout.view
  if (bytes.buffer !== likeBuffer) {
    likeBuffer = bytes.buffer
    likeView = new DataView(likeBuffer)
  }
  const bv = likeView
  const bo = bytes.byteOffset
  const r = likeReader
  r.reset(bytes)
  try {
    for (let e = 0; e < keys.length; e++) {
      const kind = kinds[e]
      const s = starts[e]
      // The whole entry when it repeats, else its key.
      const same = kind === VARIES ? valueStarts[e] - s : ends[e] - s
      if (o + same > end) return false
      if (!sameBytes(bv, bo + o, tv, s, same)) return false
      let v: unknown
      if (kind === SAME) {
        o += same
        v = values[e]
      } else if (kind === SAME_COPY) {
        o += same
        v = (values[e] as unknown[]).slice()
      } else {
        r.o = kind === VARIES ? o + same : o + valueStarts[e] - s
        v = r.item(1)
        o = r.o
      }
      const code = codes[e]
      if (code >= 0) (store as FieldStore).put(into, code, v)
      else into[keys[e]] = v
    }
  } catch (err) {
    if (err === FAIL) return false
    throw err
  }
  return o === end
}

/**
 * The keys a map usually holds (an envelope's), in canonical order, with their encodings:
 * decodeCanonicalMap compares the bytes at each key against the known keys that may still
 * follow — no string made, no lookup, no order check between two known keys. Any other key
 * is read and checked as usual.
 */
export class KnownKeys {
  readonly names: readonly string[]
  readonly encoded: readonly Uint8Array[]

  constructor (names: readonly string[]) {
    const enc = new TextEncoder()
    const sorted = names.map(name => {
      const b = enc.encode(name)
      if (b.length > 23) throw new RangeError('known keys are at most 23 bytes')
      return { name, bytes: Uint8Array.of(0x60 | b.length, ...b) }
    }).sort((a, b) => keyAfter(concat(a.bytes, b.bytes), 0, a.bytes.length, a.bytes.length, b.bytes.length) ? -1 : 1)
    this.names = sorted.map(x => x.name)
    this.encoded = sorted.map(x => x.bytes)
  }

  /** The index of the known key encoded at `o`, searching from `from`; -1 when none is. */
  match (b: Uint8Array, o: number, from: number): number {
    const encoded = this.encoded
    const end = b.length
    for (let j = from; j < encoded.length; j++) {
      const e = encoded[j]
      if (e[0] !== b[o]) continue
      const len = e.length
      if (o + len > end) return -1
      let i = 1
      while (i < len && e[i] === b[o + i]) i++
      if (i === len) return j
    }
    return -1
  }
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

function headSize (n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

function writeMapHead (out: Uint8Array, n: number): number {
  if (n < 24) { out[0] = 0xa0 | n; return 1 }
  if (n < 0x100) { out[0] = 0xb8; out[1] = n; return 2 }
  if (n < 0x10000) { out[0] = 0xb9; out[1] = n >>> 8; out[2] = n & 0xff; return 3 }
  out[0] = 0xba
  new DataView(out.buffer, out.byteOffset + 1, 4).setUint32(0, n)
  return 5
}

const TEXT_CACHE_MAX_LENGTH = 128
const TEXT_CACHE_ENTRIES = 4096
/** Encoded text strings (head and UTF-8 bytes) by value; cleared when full. */
const textCache = new Map<string, Uint8Array>()

/** The canonical encoding (head and bytes) of an ASCII string of at most 23 characters: a map key to write with `small`. */
export function encodedText (s: string): Uint8Array {
  if (s.length > 23 || !/^[\x00-\x7f]*$/.test(s)) throw new RangeError('encodedText takes ASCII of at most 23 characters')
  return Uint8Array.from([0x60 | s.length, ...Array.from(s, c => c.charCodeAt(0))])
}

/**
 * A growable buffer writing canonical CBOR heads, for encoders of fixed layouts (the
 * envelope). Callers write map keys in canonical order themselves.
 */
export class CborWriter {
  private buf: Uint8Array
  private o = 0

  constructor (size: number = 512) { this.buf = new Uint8Array(size) }

  /** Starts over (keeping the buffer). */
  reset (): this {
    this.o = 0
    return this
  }

  private room (n: number): void {
    if (this.o + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.o + n))
    next.set(this.buf.subarray(0, this.o))
    this.buf = next
  }

  head (major: number, n: number): void {
    this.room(9)
    const b = this.buf
    const m = major << 5
    if (n < 24) b[this.o++] = m | n
    else if (n < 0x100) { b[this.o++] = m | 24; b[this.o++] = n }
    else if (n < 0x10000) { b[this.o++] = m | 25; b[this.o++] = n >>> 8; b[this.o++] = n & 0xff }
    else if (n < 0x100000000) {
      b[this.o++] = m | 26
      b[this.o++] = n >>> 24; b[this.o++] = (n >>> 16) & 0xff; b[this.o++] = (n >>> 8) & 0xff; b[this.o++] = n & 0xff
    } else {
      b[this.o++] = m | 27
      const hi = Math.floor(n / 0x100000000)
      const lo = n >>> 0
      b[this.o++] = hi >>> 24; b[this.o++] = (hi >>> 16) & 0xff; b[this.o++] = (hi >>> 8) & 0xff; b[this.o++] = hi & 0xff
      b[this.o++] = lo >>> 24; b[this.o++] = (lo >>> 16) & 0xff; b[this.o++] = (lo >>> 8) & 0xff; b[this.o++] = lo & 0xff
    }
  }

  uint (n: number): void { this.head(0, n) }

  bytes (v: Uint8Array): void {
    this.head(2, v.length)
    this.room(v.length)
    this.buf.set(v, this.o)
    this.o += v.length
  }

  text (s: string): void {
    // Keys, and values such as the sender, network, topic and content type, recur in every
    // envelope: their encodings are kept (bounded) and copied.
    if (s.length <= TEXT_CACHE_MAX_LENGTH) {
      let enc = textCache.get(s)
      if (enc === undefined) {
        const start = this.o
        this.textUncached(s)
        enc = this.buf.slice(start, this.o)
        if (textCache.size >= TEXT_CACHE_ENTRIES) textCache.clear()
        textCache.set(s, enc)
        return
      }
      this.raw(enc)
      return
    }
    this.textUncached(s)
  }

  private textUncached (s: string): void {
    // ASCII (every key and almost every value): one byte per char, no encoder call.
    let ascii = s.length <= 256
    if (ascii) for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) { ascii = false; break }
    if (ascii) {
      this.head(3, s.length)
      this.room(s.length)
      for (let i = 0; i < s.length; i++) this.buf[this.o++] = s.charCodeAt(i)
      return
    }
    const enc = Buffer.from(s, 'utf8')
    this.head(3, enc.length)
    this.room(enc.length)
    this.buf.set(enc, this.o)
    this.o += enc.length
  }

  /**
   * A short encoded item (a map key from `encodedText`): copied byte by byte, which for a
   * few bytes is cheaper than `raw`'s typed-array `set`.
   */
  small (v: Uint8Array): void {
    this.room(v.length)
    const b = this.buf
    let o = this.o
    for (let i = 0; i < v.length; i++) b[o++] = v[i]
    this.o = o
  }

  /** Bytes already encoded (a slice of canonical CBOR). */
  raw (v: Uint8Array): void {
    this.room(v.length)
    this.buf.set(v, this.o)
    this.o += v.length
  }

  /** Bytes written so far. */
  get length (): number { return this.o }

  bool (v: boolean): void {
    this.room(1)
    this.buf[this.o++] = v ? 0xf5 : 0xf4
  }

  /**
   * A copy of what was written. Up to 4 KiB it is a view into a shared 64 KiB slab (as
   * Buffer.allocUnsafe pools small buffers): a typed array above 64 bytes otherwise gets an
   * off-heap allocation of its own, ~0.2 µs for every envelope encoded. A slab lives as long
   * as any copy in it.
   */
  finish (): Uint8Array {
    const n = this.o
    if (n > SLAB_MAX_COPY) return this.buf.slice(0, n)
    if (slabUsed + n > SLAB_BYTES) { slab = new Uint8Array(SLAB_BYTES); slabUsed = 0 }
    const o = slabUsed
    slab.set(this.buf.subarray(0, n), o)
    // Eight-byte aligned, as an allocator would.
    slabUsed = (o + n + 7) & ~7
    return slab.subarray(o, o + n)
  }
}

const SLAB_BYTES = 64 * 1024
const SLAB_MAX_COPY = 4 * 1024
let slab = new Uint8Array(SLAB_BYTES)
let slabUsed = 0

/** mapEntryEnd's keys, encoded (the few an envelope splices at). */
const entryKeys = new Map<string, Uint8Array>()
/** The reader mapEntryEnd steps with (never re-entered). */
const entryReader = new Reader(new Uint8Array(0))

/**
 * Where the entry `key` of a canonical top-level map ends (the offset just past its value),
 * or -1 when the map has no such entry (or is not fast-path CBOR). For maps already read
 * and checked (a verified batch's leaves): keys are compared as bytes and the entries before
 * it stepped over, nothing decoded.
 */
export function mapEntryEnd (bytes: Uint8Array, key: string): number {
  try {
    let want = entryKeys.get(key)
    if (want === undefined) { want = encodedText(key); entryKeys.set(key, want) }
    const r = entryReader
    r.reset(bytes)
    const n = r.head()
    if (r.major !== 5) return -1
    for (let i = 0; i < n; i++) {
      const at = r.o
      let same = at + want.length <= bytes.length
      for (let j = 0; same && j < want.length; j++) same = bytes[at + j] === want[j]
      if (same) r.o += want.length
      else {
        const len = r.head()
        if ((r.major as number) !== 3 || len > bytes.length - r.o) return -1
        r.o += len
      }
      r.skip(1)
      if (same) return r.o
    }
    return -1
  } catch (err) {
    if (err === FAIL) return -1
    throw err
  }
}

/**
 * Random overlays for the simulator. A pure function of (n, degree, prng): every node opens
 * links to random peers until it has `degree` neighbours, preferring peers that still have
 * fewer (so the graph is close to degree-regular, like a gossipsub mesh of that degree);
 * components left over are then joined by one random link each.
 */
import type { Prng } from './prng.ts'

export interface Overlay {
  readonly nodes: number
  /** Undirected links as pairs of node indices, `a < b`. */
  readonly edges: ReadonlyArray<readonly [number, number]>
  /** Neighbour indices of each node. */
  readonly neighbours: ReadonlyArray<readonly number[]>
  /** Link index for each entry of `neighbours`. */
  readonly edgeIds: ReadonlyArray<readonly number[]>
}

export function randomOverlay (n: number, degree: number, prng: Prng): Overlay {
  if (!Number.isInteger(n) || n < 1) throw new RangeError('overlay needs at least one node')
  const target = Math.min(degree, n - 1)
  const adj: Array<Set<number>> = Array.from({ length: n }, () => new Set())
  // Nodes below the target degree, for cheap uniform picks among them (swap-remove).
  const open: number[] = Array.from({ length: n }, (_, i) => i)
  const pos = Int32Array.from(open)
  const close = (v: number): void => {
    const i = pos[v]
    if (i < 0) return
    const last = open.pop() as number
    if (last !== v) { open[i] = last; pos[last] = i }
    pos[v] = -1
  }
  const link = (a: number, b: number): void => {
    adj[a].add(b); adj[b].add(a)
    if (adj[a].size >= target) close(a)
    if (adj[b].size >= target) close(b)
  }
  for (let v = 0; v < n; v++) {
    let attempts = 0
    while (adj[v].size < target && attempts < 64) {
      attempts++
      // Prefer a peer that still needs links; late in the process fall back to anyone.
      const w = open.length > 1 && attempts <= 32 ? open[prng.int(open.length)] : prng.int(n)
      if (w === v || adj[v].has(w)) continue
      link(v, w)
    }
  }
  joinComponents(adj, prng)
  const edges: Array<[number, number]> = []
  const neighbours: number[][] = adj.map(s => [...s].sort((x, y) => x - y))
  const edgeIds: number[][] = neighbours.map(ns => new Array<number>(ns.length).fill(-1))
  for (let a = 0; a < n; a++) {
    neighbours[a].forEach((b, i) => {
      if (b < a) return
      const id = edges.length
      edges.push([a, b])
      edgeIds[a][i] = id
      edgeIds[b][neighbours[b].indexOf(a)] = id
    })
  }
  return { nodes: n, edges, neighbours, edgeIds }
}

function joinComponents (adj: Array<Set<number>>, prng: Prng): void {
  const n = adj.length
  const comp = new Int32Array(n).fill(-1)
  const members: number[][] = []
  for (let s = 0; s < n; s++) {
    if (comp[s] >= 0) continue
    const id = members.length
    const list = [s]
    comp[s] = id
    for (let i = 0; i < list.length; i++) {
      for (const w of adj[list[i]]) if (comp[w] < 0) { comp[w] = id; list.push(w) }
    }
    members.push(list)
  }
  for (let c = 1; c < members.length; c++) {
    const a = members[c - 1][prng.int(members[c - 1].length)]
    const b = members[c][prng.int(members[c].length)]
    adj[a].add(b); adj[b].add(a)
  }
}

/** Hop distances from `source` over links for which `usable(edgeId)` holds (-1: unreachable). */
export function hopDistances (overlay: Overlay, source: number, usable: (edge: number) => boolean = () => true): Int32Array {
  const dist = new Int32Array(overlay.nodes).fill(-1)
  dist[source] = 0
  const queue = [source]
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]
    const ns = overlay.neighbours[v]
    const es = overlay.edgeIds[v]
    for (let k = 0; k < ns.length; k++) {
      const w = ns[k]
      if (dist[w] < 0 && usable(es[k])) { dist[w] = dist[v] + 1; queue.push(w) }
    }
  }
  return dist
}

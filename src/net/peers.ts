/**
 * Per-peer connection state: status, latency (ping), last seen and a quality score.
 * Pure scoring in `peerQuality`; the tracker only records events.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'

export type PeerStatus = 'connecting' | 'connected' | 'degraded' | 'disconnected' | 'failed'

export interface PeerState {
  peerId: string
  status: PeerStatus
  /** Smoothed round-trip time in ms, from ping. */
  latencyMs?: number
  lastSeen?: number
  /** 0 (unusable) – 1 (excellent). */
  quality: number
  addresses: string[]
  pingFailures: number
  protocols: string[]
  /** True while every open connection to the peer goes through a circuit relay. */
  relayed: boolean
}

export const DEGRADED_LATENCY_MS = 500

/** Quality from latency and recent ping failures. */
export function peerQuality (s: Pick<PeerState, 'status' | 'latencyMs' | 'pingFailures'>): number {
  if (s.status === 'failed' || s.status === 'disconnected') return 0
  if (s.status === 'connecting') return 0.1
  const latency = s.latencyMs ?? 50
  const latencyScore = 1 / (1 + latency / 100)
  const failurePenalty = Math.pow(0.5, s.pingFailures)
  return Math.round(latencyScore * failurePenalty * 1000) / 1000
}

export function statusAfterPing (latencyMs: number | undefined, failures: number): PeerStatus {
  if (failures >= 3) return 'degraded'
  if (latencyMs != null && latencyMs > DEGRADED_LATENCY_MS) return 'degraded'
  return 'connected'
}

export interface PeerTrackerInit { pingIntervalMs?: number, maxTracked?: number }

interface PingService { ping: (peer: PeerId, opts?: { signal?: AbortSignal }) => Promise<number> }

export class PeerTracker {
  private readonly peers = new Map<string, PeerState>()
  private readonly libp2p: Libp2p<{ ping: PingService }>
  private timer?: NodeJS.Timeout
  private readonly pingIntervalMs: number
  private readonly maxTracked: number

  constructor (libp2p: Libp2p<{ ping: PingService }>, init: PeerTrackerInit = {}) {
    this.libp2p = libp2p
    this.pingIntervalMs = init.pingIntervalMs ?? 10_000
    this.maxTracked = init.maxTracked ?? 10_000
  }

  start (): void {
    const l = this.libp2p
    l.addEventListener('connection:open', (e) => {
      const s = this.state(e.detail.remotePeer.toString())
      s.status = 'connected'
      s.lastSeen = Date.now()
      s.pingFailures = 0
      s.addresses = [e.detail.remoteAddr.toString()]
      s.quality = peerQuality(s)
      // Measure latency right away rather than at the next ping round.
      void this.pingOne(e.detail.remotePeer)
    })
    l.addEventListener('peer:disconnect', (e) => {
      const s = this.state(e.detail.toString())
      s.status = 'disconnected'
      s.quality = 0
    })
    l.addEventListener('peer:identify', (e) => {
      const s = this.state(e.detail.peerId.toString())
      s.protocols = e.detail.protocols
      s.addresses = e.detail.listenAddrs.map(String)
      s.lastSeen = Date.now()
    })
    this.timer = setInterval(() => { void this.pingAll() }, this.pingIntervalMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** Marks a dial in progress / failed (called by the router when it dials). */
  dialing (peerId: string): void {
    const s = this.state(peerId)
    if (s.status !== 'connected' && s.status !== 'degraded') s.status = 'connecting'
  }

  dialFailed (peerId: string): void {
    const s = this.state(peerId)
    if (s.status === 'connecting') { s.status = 'failed'; s.quality = 0 }
  }

  seen (peerId: string): void {
    const s = this.peers.get(peerId)
    if (s != null) s.lastSeen = Date.now()
  }

  async pingAll (): Promise<void> {
    await Promise.all(this.libp2p.getPeers().map(async (peer) => { await this.pingOne(peer) }))
  }

  private async pingOne (peer: PeerId): Promise<void> {
    const s = this.state(peer.toString())
    try {
      const rtt = await this.libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) })
      s.latencyMs = s.latencyMs == null ? rtt : Math.round((s.latencyMs * 0.7 + rtt * 0.3) * 100) / 100
      s.pingFailures = 0
      s.lastSeen = Date.now()
    } catch {
      s.pingFailures++
    }
    if (s.status === 'connected' || s.status === 'degraded') s.status = statusAfterPing(s.latencyMs, s.pingFailures)
    s.quality = peerQuality(s)
  }

  list (): PeerState[] {
    return [...this.peers.values()].map(s => ({ ...s, relayed: this.relayedOnly(s.peerId) }))
  }

  private relayedOnly (peerId: string): boolean {
    const conns = this.libp2p.getConnections().filter(c => c.remotePeer.toString() === peerId)
    return conns.length > 0 && conns.every(c => c.limits != null || c.remoteAddr.toString().includes('/p2p-circuit'))
  }

  get (peerId: string): PeerState | undefined {
    const s = this.peers.get(peerId)
    return s == null ? undefined : { ...s, relayed: this.relayedOnly(peerId) }
  }

  private state (peerId: string): PeerState {
    let s = this.peers.get(peerId)
    if (s == null) {
      if (this.peers.size >= this.maxTracked) {
        for (const [id, st] of this.peers) if (st.status === 'disconnected' || st.status === 'failed') { this.peers.delete(id); break }
      }
      s = { peerId, status: 'connecting', quality: 0.1, addresses: [], pingFailures: 0, protocols: [], relayed: false }
      this.peers.set(peerId, s)
    }
    return s
  }
}

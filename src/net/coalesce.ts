/**
 * Coalesced socket writes for a libp2p TCP transport.
 *
 * Below the muxer, libp2p writes each Noise message as two `socket.write` calls (its 2-byte
 * length, then the ciphertext), and yamux answers every data frame it reads with a window
 * update, written from the read callback. With TCP_NODELAY (libp2p's default, which latency
 * needs) every write is its own syscall and its own segment, and wakes the reader: a
 * request–reply round trip across two nodes cost 4 write syscalls per node.
 *
 * Here what the connection writes is held from the first write until the callback that
 * wrote and every promise job it started have run (a microtask queues a `process.nextTick`,
 * and Node runs next-tick callbacks only when the microtask queue is empty), then written
 * in one `socket.write`. So the window update for a frame just read, the reply an agent's
 * handler produced from it, and each Noise message's two parts leave in one system call
 * and one buffer, and nothing waits for a later phase of
 * the event loop (a `setImmediate` uncork would queue a reply behind whatever else waits
 * for the check phase, such as a store commit). Order is kept; backpressure is the socket's
 * own (`write` returns false past its high-water mark, and `drain` follows the flush).
 */
import { Socket } from 'node:net'
import type { Connection, CreateListenerOptions, DialTransportOptions, Listener, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

type SendData = (data: unknown) => unknown

/**
 * Wraps a transport factory (`tcp()`): connections it dials or accepts hold their writes
 * until the writing callback and its promise jobs are done, then write them at once. Connections that are not on a `net.Socket` are
 * left alone.
 */
export function coalesceWrites<C> (factory: (components: C) => Transport): (components: C) => Transport {
  return (components) => {
    const transport = factory(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    const upgraders = new WeakMap<Upgrader, Upgrader>()
    const wrap = (u: Upgrader): Upgrader => {
      let w = upgraders.get(u)
      if (w === undefined) {
        w = coalescingUpgrader(u)
        upgraders.set(u, w)
      }
      return w
    }
    transport.dial = async (ma: Multiaddr, options: DialTransportOptions): Promise<Connection> => await dial(ma, { ...options, upgrader: wrap(options.upgrader) })
    transport.createListener = (options: CreateListenerOptions): Listener => createListener({ ...options, upgrader: wrap(options.upgrader) })
    return transport
  }
}

/** The same upgrader, with each raw connection's writes coalesced before it is upgraded. */
function coalescingUpgrader (u: Upgrader): Upgrader {
  return new Proxy(u, {
    get (target, prop) {
      if (prop === 'upgradeOutbound') return async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeOutbound']>[1]) => await target.upgradeOutbound(corkUntilDrained(maConn), opts)
      if (prop === 'upgradeInbound') return async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeInbound']>[1]) => { await target.upgradeInbound(corkUntilDrained(maConn), opts) }
      const v: unknown = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

/**
 * Holds what the connection writes until the microtask queue has drained, then writes it to
 * the socket in one `write` (one buffer: copied together when there are several) — or at
 * once when what is held reaches the socket's high-water mark (16 KiB): a bulk sender's
 * batches leave as they are made, so the reader works on one while the next is built.
 * Uses the TCP connection's `socket`, `sendData` (where it writes each buffer) and
 * `sendClose` (what is held is written before the socket closes).
 *
 * One write instead of the socket corked around several: each `socket.write` of a corked
 * socket queues an entry and its callback, and the uncork gathers them for `writev` — per
 * Noise message two writes (its length, then the ciphertext), ~1 KB allocated and a few
 * µs per round trip per node (PERFORMANCE.md, "Request–reply, session 9").
 */
export function corkUntilDrained (maConn: MultiaddrConnection): MultiaddrConnection {
  const conn = maConn as MultiaddrConnection & { socket?: unknown, sendData?: SendData, sendClose?: (options?: unknown) => Promise<void> }
  const socket = conn.socket
  const send = conn.sendData
  const close = conn.sendClose
  if (!(socket instanceof Socket) || typeof send !== 'function' || typeof close !== 'function') return maConn
  let held: Uint8Array[] = []
  let heldBytes = 0
  let scheduled = false
  const flush = (): boolean => {
    scheduled = false
    if (held.length === 0) return !socket.writableNeedDrain
    const bufs = held
    const bytes = heldBytes
    held = []
    heldBytes = 0
    return socket.write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs, bytes))
  }
  const flushSoon = (): void => { process.nextTick(flush) }
  conn.sendData = function (this: unknown, data: unknown): unknown {
    if (socket.destroyed) return send.call(this, data)
    // A list of buffers (a Uint8ArrayList, as libp2p's streams pass), or one buffer.
    let sentBytes = 0
    for (const buf of data instanceof Uint8Array ? [data] : data as Iterable<Uint8Array>) {
      if (buf.byteLength === 0) continue
      held.push(buf)
      sentBytes += buf.byteLength
    }
    heldBytes += sentBytes
    if (!scheduled) {
      scheduled = true
      queueMicrotask(flushSoon)
    }
    const canSendMore = heldBytes + socket.writableLength >= socket.writableHighWaterMark ? flush() : !socket.writableNeedDrain
    return { sentBytes, canSendMore }
  }
  conn.sendClose = async function (this: unknown, options?: unknown): Promise<void> {
    if (!socket.destroyed) flush()
    await close.call(this, options)
  }
  return maConn
}

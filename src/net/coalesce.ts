/**
 * Coalesced socket writes for a libp2p TCP transport.
 *
 * Below the muxer, libp2p writes each Noise message as two `socket.write` calls (its 2-byte
 * length, then the ciphertext), and yamux sends a window-update frame after every data frame
 * it reads. With TCP_NODELAY (libp2p's default, which latency needs) every write is its own
 * syscall and its own segment: a request–reply round trip across two nodes cost 8 write
 * syscalls and as many wake-ups on the other side. Here the socket is corked on the first
 * write of an event-loop turn and uncorked at the end of it (`setImmediate`), so what one
 * turn writes — the window update for the frame just read, the reply the handler produced
 * from it, the length prefixes — leaves in one `writev`. Nothing waits longer than the turn
 * that wrote it; order is kept; backpressure is the socket's own (`write` returns false past
 * its high-water mark, and `drain` follows the flush).
 */
import { Socket } from 'node:net'
import type { Connection, CreateListenerOptions, DialTransportOptions, Listener, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

type SendData = (data: unknown) => unknown

/**
 * Wraps a transport factory (`tcp()`): connections it dials or accepts write through a
 * socket corked for the rest of the turn. Connections that are not on a `net.Socket` are
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
      if (prop === 'upgradeOutbound') return async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeOutbound']>[1]) => await target.upgradeOutbound(corkPerTurn(maConn), opts)
      if (prop === 'upgradeInbound') return async (maConn: MultiaddrConnection, opts: Parameters<Upgrader['upgradeInbound']>[1]) => { await target.upgradeInbound(corkPerTurn(maConn), opts) }
      const v: unknown = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

/**
 * Corks the connection's socket on its first write in a turn and uncorks it when the turn
 * ends. Uses the TCP connection's `socket` and its `sendData` (where it writes each buffer).
 */
export function corkPerTurn (maConn: MultiaddrConnection): MultiaddrConnection {
  const conn = maConn as MultiaddrConnection & { socket?: unknown, sendData?: SendData }
  const socket = conn.socket
  const send = conn.sendData
  if (!(socket instanceof Socket) || typeof send !== 'function') return maConn
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  conn.sendData = function (this: unknown, data: unknown): unknown {
    if (!corked && !socket.destroyed) {
      corked = true
      socket.cork()
      setImmediate(uncork)
    }
    return send.call(this, data)
  }
  return maConn
}

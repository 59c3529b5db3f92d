/**
 * Yamux receive-window updates: half a window at a time, not one per data frame.
 *
 * js-libp2p-yamux answers every data frame it reads with a window update that restores the
 * full window (`YamuxStream.sendWindowUpdate`, called from `handleData`). On a request–reply
 * link that is a second Noise message each way per message: 12 bytes of yamux header
 * encrypted, framed, decrypted and parsed by both nodes, every time. go-yamux and rust-yamux
 * instead send an update once the unused window has fallen to half (the sender then still
 * has half a window in flight, so a bulk sender never stalls on it); the protocol leaves the
 * policy to the receiver. This module gives js-libp2p-yamux streams that policy: in the
 * established state, while more than half of the receive window is unused, no update is
 * sent. Every other case — a stream still to be acknowledged (the update carries its ACK
 * flag), a paused stream, a window to grow — takes the library's own path unchanged, and
 * the window auto-tuning still doubles the window when half of it is consumed within four
 * round trips.
 */
import { YamuxStream, StreamState } from '@chainsafe/libp2p-yamux/stream'

interface WindowState { state: StreamState, recvWindow: number, recvWindowCapacity: number }

let installed = false

/** Installs the policy on YamuxStream (once per process; idempotent). */
export function halfWindowUpdates (): void {
  if (installed) return
  installed = true
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowState) => void }
  const original = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: WindowState): void {
    if (this.state === StreamState.Established && needsNoUpdate(this.recvWindowCapacity, this.recvWindow)) return
    original.call(this)
  }
}

/** True while more than half of the receive window is still unused: the sender has room enough. */
export function needsNoUpdate (capacity: number, window: number): boolean {
  return capacity * 2 > window
}

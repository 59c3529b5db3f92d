import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { Uint8ArrayList } from 'uint8arraylist'
import { logger } from '@libp2p/logger'
import { YamuxStream, StreamState } from '@chainsafe/libp2p-yamux/stream'
import { halfWindowUpdates, needsNoUpdate } from '../../src/net/yamux-window.ts'

const WINDOW = 256 * 1024
const DATA = 0
const WINDOW_UPDATE = 1
const ACK = 2

interface Header { type: number, flag: number, streamID: number, length: number }

/** A yamux stream on its own: what it would write to the muxer is collected in `sent`. */
function stream (state: StreamState) {
  const sent: Header[] = []
  const s = new YamuxStream({
    id: '1',
    streamId: 1,
    state,
    direction: 'inbound',
    log: logger('test:yamux-window'),
    sendFrame: (header: Header) => { sent.push(header); return true },
    getRTT: () => -1,
    initialStreamWindowSize: WINDOW
  } as unknown as ConstructorParameters<typeof YamuxStream>[0])
  // A reader, so that data is consumed as it arrives.
  s.addEventListener('message', () => {})
  const receive = (n: number, flag = 0): void => {
    (s as unknown as { handleData: (f: unknown) => void }).handleData({ header: { type: DATA, flag, streamID: 1, length: n }, data: new Uint8ArrayList(new Uint8Array(n)) })
  }
  return { s, sent, receive, updates: () => sent.filter(h => h.type === WINDOW_UPDATE) }
}

describe('yamux window updates (net/yamux-window.ts)', () => {
  before(() => { halfWindowUpdates() })

  it('an established stream sends no update while more than half of its window is unused', () => {
    const { receive, updates } = stream(StreamState.Established)
    // 100 request-sized frames: 60 KB of a 256 KiB window.
    for (let i = 0; i < 100; i++) receive(600)
    assert.equal(updates().length, 0)
  })

  it('once half the window is used, one update restores all of it: the sender never has less than half', () => {
    const { receive, updates } = stream(StreamState.Established)
    let inFlight = 0
    let seen = 0
    for (let i = 0; i < 1000; i++) {
      receive(1000)
      inFlight += 1000
      const all = updates()
      for (; seen < all.length; seen++) inFlight -= all[seen].length
      assert.ok(WINDOW - inFlight >= WINDOW / 2 - 1000, `the sender's window fell to ${WINDOW - inFlight}`)
    }
  })

  it('updates per half window: 1,000 frames of 1 KB take 7–8 updates, not 1,000', () => {
    const { receive, updates } = stream(StreamState.Established)
    for (let i = 0; i < 1000; i++) receive(1000)
    const n = updates().length
    assert.ok(n >= 7 && n <= 8, `${n} updates`)
    for (const u of updates()) assert.ok(u.length >= WINDOW / 2, `an update of ${u.length} bytes`)
  })

  it('a stream still to be acknowledged sends its update (with the ACK flag) at once', () => {
    const { receive, updates } = stream(StreamState.SYNReceived)
    receive(600)
    assert.equal(updates().length, 1)
    assert.equal(updates()[0].flag & ACK, ACK)
  })

  it('the threshold', () => {
    assert.equal(needsNoUpdate(WINDOW, WINDOW), true)
    assert.equal(needsNoUpdate(WINDOW / 2 + 1, WINDOW), true)
    assert.equal(needsNoUpdate(WINDOW / 2, WINDOW), false)
    assert.equal(needsNoUpdate(0, WINDOW), false)
  })
})

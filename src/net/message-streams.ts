/**
 * libp2p message streams that pass a chunk straight through when nothing waits before it.
 *
 * `AbstractMessageStream` (@libp2p/utils) is every layer of a connection: the TCP
 * connection, its Noise session, each yamux stream. A chunk read goes into the stream's read
 * buffer (a `Uint8ArrayList`) and leaves it at once as a new sublist; a chunk written goes
 * into the write buffer and leaves it at once as a sublist plus a copy of that list, handed
 * to the layer below. On a request–reply link every buffer is empty when a message comes,
 * so each of the three layers allocates and discards two or three lists (and their arrays)
 * per message each way, for nothing: the read and write paths were ~13 of the responder's
 * ~27 KB allocated per round trip (PERFORMANCE.md, "Request–reply, session 6").
 *
 * Here, a chunk read while the read buffer is empty, the stream readable and a `message`
 * listener present is dispatched as it came (a `Uint8Array` or a list, as the event's type
 * allows); a chunk written while the write buffer is empty, nothing is being sent, no drain
 * is awaited and the chunk fits one message is handed to the layer below in one new list,
 * and what that layer did not take goes into the write buffer ahead of anything written
 * meanwhile, as the library does. Every other case takes the library's own path, and the
 * events (`message`, `idle`, `end`) and flags are the same as on that path.
 */
import { AbstractMessageStream } from '@libp2p/utils'
import { StreamMessageEvent } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

interface SendResult { sentBytes: number, canSendMore: boolean }

/** The members of AbstractMessageStream the fast paths use (protected or untyped there). */
interface StreamState {
  readBuffer: Uint8ArrayList
  writeBuffer: Uint8ArrayList
  readStatus: string
  writeStatus: string
  remoteWriteStatus: string
  sendingData: boolean
  writableNeedsDrain: boolean
  maxMessageSize?: number
  listenerCount: (type: string) => number
  dispatchEvent: (evt: Event) => boolean
  safeDispatchEvent: (type: string) => void
  maybeDispatchEnd: () => void
  checkWriteBufferLength: () => void
  processSendQueue: () => boolean
  abort: (err: Error) => void
  sendData: (data: Uint8ArrayList) => SendResult
}

type Chunk = Uint8Array | Uint8ArrayList

let installed = false

/** Installs both fast paths on AbstractMessageStream (once per process; idempotent). */
export function directMessageStreams (): void {
  if (installed) return
  installed = true
  const proto = AbstractMessageStream.prototype as unknown as { onData: (this: StreamState, data: Chunk) => void, send: (this: StreamState, data: Chunk) => boolean }
  const onData = proto.onData
  const send = proto.send
  // A library version without these members keeps its own paths (test/unit/message-streams.test.ts notices).
  if (typeof onData !== 'function' || typeof send !== 'function') return
  proto.onData = function (this: StreamState, data: Chunk): void {
    if (data.byteLength === 0 || !readsThrough(this)) { onData.call(this, data); return }
    this.dispatchEvent(new StreamMessageEvent(data))
    // As after the library's dispatch: the readable end closes once the remote's has and nothing is left.
    if (this.readBuffer.byteLength === 0 && this.remoteWriteStatus === 'closed') {
      this.readStatus = 'closed'
      this.maybeDispatchEnd()
    }
  }
  proto.send = function (this: StreamState, data: Chunk): boolean {
    if (data.byteLength === 0 || !writesThrough(this, data.byteLength)) return send.call(this, data)
    return sendThrough(this, data)
  }
}

/** Nothing is buffered ahead of a chunk read now, and someone takes it. */
function readsThrough (s: StreamState): boolean {
  return s.readBuffer.byteLength === 0 && s.readStatus === 'readable' && s.listenerCount('message') > 0
}

/** Nothing is queued or being sent ahead of a chunk of `bytes` written now, and it fits one message. */
function writesThrough (s: StreamState, bytes: number): boolean {
  return s.writeStatus === 'writable' && !s.sendingData && !s.writableNeedsDrain && s.writeBuffer.byteLength === 0 &&
    (s.maxMessageSize === undefined || bytes <= s.maxMessageSize)
}

/** `processSendQueue` for one chunk and an empty write buffer, without copying lists. */
function sendThrough (s: StreamState, data: Chunk): boolean {
  s.sendingData = true
  let result: SendResult
  try {
    // A new list: the layer below may consume what it is given (yamux does), and the caller's chunk stays as it was.
    result = s.sendData(new Uint8ArrayList(data))
  } catch (err) {
    s.sendingData = false
    // Back in the write buffer, as the library does, so that abort() emits 'idle' as it drops it.
    s.writeBuffer.prepend(data)
    s.abort(err as Error)
    throw err
  }
  s.sendingData = false
  // What the layer below did not take goes first; chunks written meanwhile (re-entrantly) after it.
  if (result.sentBytes < data.byteLength) s.writeBuffer.prepend(data instanceof Uint8Array ? data.subarray(result.sentBytes) : data.sublist(result.sentBytes))
  if (result.canSendMore && s.writeBuffer.byteLength > 0) return s.processSendQueue()
  if (!result.canSendMore) {
    s.writableNeedsDrain = true
    s.checkWriteBufferLength()
  }
  if (s.writeBuffer.byteLength === 0) s.safeDispatchEvent('idle')
  return result.canSendMore
}

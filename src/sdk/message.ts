import type { Envelope } from '../core/envelope.ts'
import { envelopePayload, envelopeToJson } from '../core/envelope.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { Message } from '../node/types.ts'

/**
 * The SDK's view of a verified envelope. Payload decompression happens once, lazily. A
 * class (payload, data and toJSON on its prototype): a message is made for every delivery,
 * so it costs one object, not an object and three closures.
 */
class EnvelopeMessage implements Message {
  readonly id: Message['id']
  readonly mode: Message['mode']
  readonly type: string
  readonly from: Message['from']
  readonly to?: Message['to']
  readonly topic?: Message['topic']
  readonly schema?: string
  readonly protocol?: string
  readonly conversation?: string
  readonly correlation?: string
  readonly replyTo?: string
  readonly timestamp: number
  readonly ttl: number
  readonly priority: number
  readonly contentType: string
  readonly envelope: Envelope
  private inflated: Uint8Array | undefined

  constructor (env: Envelope) {
    this.id = env.id
    this.mode = env.mode
    this.type = env.type
    this.from = env.from
    this.to = env.to
    this.topic = env.topic
    this.schema = env.schema
    this.protocol = env.proto
    this.conversation = env.conv
    this.correlation = env.corr
    this.replyTo = env.replyTo
    this.timestamp = env.ts
    this.ttl = env.ttl
    this.priority = env.prio
    this.contentType = env.ct
    this.envelope = env
    this.inflated = env.enc === undefined ? env.body : undefined
  }

  get payload (): Uint8Array {
    this.inflated ??= envelopePayload(this.envelope)
    return this.inflated
  }

  data<T = unknown> (): T {
    try {
      return JSON.parse(Buffer.from(this.payload).toString('utf8')) as T
    } catch (err) {
      throw new InvalidArgumentError(`payload of ${this.id} is not JSON (${this.contentType})`, { cause: err })
    }
  }

  toJSON (): ReturnType<Message['toJSON']> { return envelopeToJson(this.envelope) }
}

/**
 * The envelope last made into a message, and that message. A node hands one envelope to each
 * of its matching agents in turn (a topic's local subscribers, a broadcast's agents, the
 * local recipients of a direct message), and they all get this one message: one object per
 * envelope, not per agent, and a compressed payload inflated once. Its fields are read-only
 * and its payload was shared before (the envelope's body), so sharing it changes nothing an
 * agent can see.
 */
let lastEnvelope: Envelope | undefined
let lastMessage: EnvelopeMessage | undefined

export function toMessage (env: Envelope): Message {
  if (env !== lastEnvelope || lastMessage === undefined) {
    lastMessage = new EnvelopeMessage(env)
    lastEnvelope = env
  }
  return lastMessage
}

/**
 * The clock a subscription checks a message's expiry against when it takes it (Sub.push):
 * read once per turn of deliveries, not once per agent and message. A node delivers a batch
 * frame's envelopes to its agents in one synchronous run — ~10³ envelopes to each matching
 * agent — and `Date.now()` costs ~40 ns a call here, as much as the rest of a delivery. The
 * reading is dropped when the run ends (a microtask queued with it), so it is never older
 * than the task delivering: what ingress does too, which checks a whole frame against one
 * reading (checkBatch's `now`).
 */
let turnNow = 0
let turnRead = false

export function deliveryNow (): number {
  if (!turnRead) {
    turnNow = Date.now()
    turnRead = true
    queueMicrotask(endTurn)
  }
  return turnNow
}

function endTurn (): void { turnRead = false }

import type { Envelope } from '../core/envelope.ts'
import { envelopePayload, envelopeToJson } from '../core/envelope.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { Message } from '../node/types.ts'

/** The SDK's view of a verified envelope. Payload decompression happens once, lazily. */
export function toMessage (env: Envelope): Message {
  let payload: Uint8Array | undefined
  const bytes = (): Uint8Array => { payload ??= envelopePayload(env); return payload }
  return {
    id: env.id,
    mode: env.mode,
    type: env.type,
    from: env.from,
    to: env.to,
    topic: env.topic,
    schema: env.schema,
    protocol: env.proto,
    conversation: env.conv,
    correlation: env.corr,
    replyTo: env.replyTo,
    timestamp: env.ts,
    ttl: env.ttl,
    priority: env.prio,
    contentType: env.ct,
    get payload () { return bytes() },
    data<T = unknown> (): T {
      try {
        return JSON.parse(Buffer.from(bytes()).toString('utf8')) as T
      } catch (err) {
        throw new InvalidArgumentError(`payload of ${env.id} is not JSON (${env.ct})`, { cause: err })
      }
    },
    envelope: env,
    toJSON: () => envelopeToJson(env)
  }
}

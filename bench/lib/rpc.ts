/**
 * Request–reply emulated over two topics, for systems without their own (MQTT, gossipsub):
 * requests go to `req`, replies to `rep`; the correlation is the payload's sequence number,
 * which the reply carries back. One requester, one responder.
 */
import { seqOf } from './payload.ts'
import type { Endpoint, Rpc } from './types.ts'

export function emulatedRpc (ep: Endpoint): Rpc {
  const pending = new Map<number, (reply: Uint8Array) => void>()
  let subscribed: Promise<void> | undefined

  return {
    async serve (handler) {
      await ep.subscribe('req', (request) => {
        // A reply that cannot be sent is a lost round trip; the requester counts the timeout.
        void Promise.resolve().then(() => ep.publish('rep', handler(request))).catch(() => {})
      })
    },

    async request (payload, timeoutMs) {
      subscribed ??= ep.subscribe('rep', (reply) => { pending.get(seqOf(reply))?.(reply) })
      await subscribed
      const seq = seqOf(payload)
      const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>()
      const timer = setTimeout(() => { reject(new Error(`no reply within ${timeoutMs} ms`)) }, timeoutMs)
      pending.set(seq, resolve)
      try {
        await ep.publish('req', payload)
        return await promise
      } finally {
        clearTimeout(timer)
        pending.delete(seq)
      }
    }
  }
}

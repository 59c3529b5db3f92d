/**
 * Validation of payloads at egress (the SDK, before signing) and ingress (every node).
 *
 * Order matters for bombs: the limits are checked on the bytes first (decompression
 * bounded, then `scanJson`), so a deep, wide or long payload is refused before JSON.parse
 * allocates anything for it and before a schema is looked up on the network; only then is
 * it parsed and validated by the compiled validator.
 *
 * Ingress answers with a reason value (to count, log once and answer `not-understood`);
 * egress throws the typed error with the same issues.
 */
import { envelopePayload, isJsonContentType, type EnvelopeFields } from '../core/envelope.ts'
import type { SchemaUri } from '../core/ids.ts'
import { createPayloadLimits, scanJson, type PayloadLimits } from './bounds.ts'
import { PayloadLimitError, SchemaNotFoundError, SchemaValidationError, TranslationError, type ValidationIssue } from './errors.ts'
import type { SchemaRegistry } from './registry.ts'
import { parseUri } from './semver.ts'

export const INCOMING_REASONS = ['schema-invalid', 'schema-unknown', 'payload-bomb'] as const
export type IncomingReason = typeof INCOMING_REASONS[number]

export type IncomingResult =
  | {
    ok: true
    /** The parsed payload (JSON content only); translated when `accept` asked for it. */
    value?: unknown
    /** The schema `value` is valid under: the envelope's, or the one it was translated to. */
    schema?: SchemaUri
  }
  | { ok: false, reason: IncomingReason, errors: ValidationIssue[] }

export interface ValidationInit {
  limits?: Partial<PayloadLimits>
  /** Apply the limits to JSON payloads that name no schema too (default true): the SDK parses them anyway. */
  scanUnschematized?: boolean
}

/** What the check needs from an envelope. */
export type PayloadCarrier = Pick<EnvelopeFields, 'schema' | 'ct' | 'body' | 'enc'>

export interface Validation {
  /** Throws PayloadLimitError, SchemaNotFoundError or SchemaValidationError (`details.errors`). Call before signing. */
  checkOutgoing: (fields: PayloadCarrier, options?: { signal?: AbortSignal }) => Promise<void>
  /**
   * The ingress check: a reason value, never a throw. With `accept`, a payload under another
   * schema is translated to the first of them reachable (registry translators).
   */
  checkIncoming: (env: PayloadCarrier, options?: { signal?: AbortSignal, accept?: readonly string[] }) => Promise<IncomingResult>
  /** Validates a value (not bytes) against a schema: the issues, empty when valid. */
  checkValue: (schema: string, value: unknown, options?: { signal?: AbortSignal }) => Promise<ValidationIssue[]>
  /** Refusals by reason, and accepted payloads. */
  readonly counters: Readonly<Record<IncomingReason | 'ok', number>>
  readonly limits: Readonly<PayloadLimits>
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * @example
 * const validation = createValidation(registry)
 * await validation.checkOutgoing(fields)          // SDK, before signEnvelope
 * const r = await validation.checkIncoming(env)   // node, after verifyIngress
 * if (!r.ok) reject(r.reason, r.errors)
 */
export function createValidation (registry: SchemaRegistry, init: ValidationInit = {}): Validation {
  const limits = createPayloadLimits(init.limits)
  const scanAll = init.scanUnschematized ?? true
  const counters: Record<IncomingReason | 'ok', number> = { ok: 0, 'schema-invalid': 0, 'schema-unknown': 0, 'payload-bomb': 0 }

  const check = async (env: PayloadCarrier, signal?: AbortSignal, accept?: readonly string[]): Promise<IncomingResult> => {
    const fail = (reason: IncomingReason, errors: ValidationIssue[]): IncomingResult => ({ ok: false, reason, errors })
    const json = isJsonContentType(env.ct)
    if (env.schema == null && !(scanAll && json)) return { ok: true }
    const uri = env.schema != null ? parseUri(env.schema) : undefined
    if (env.schema != null && uri == null) return fail('schema-unknown', [{ path: '', message: `${JSON.stringify(env.schema.slice(0, 100))} is not a schema URI ns/name@semver`, keyword: 'schema' }])
    if (env.schema != null && !json) return fail('schema-invalid', [{ path: '', message: `content type ${env.ct} is not JSON; a schema applies to JSON payloads only`, keyword: 'contentType' }])
    if (env.enc == null && env.body.length > limits.maxBytes) return fail('payload-bomb', [{ path: '', message: `payload is ${env.body.length} bytes, limit ${limits.maxBytes}`, keyword: 'maxBytes' }])
    let bytes: Uint8Array
    try {
      bytes = envelopePayload(env, limits.maxBytes)
    } catch {
      return fail('payload-bomb', [{ path: '', message: `payload does not decompress within ${limits.maxBytes} bytes`, keyword: 'maxBytes' }])
    }
    const scan = scanJson(bytes, limits)
    if (!scan.ok) return scan.issue.keyword === 'syntax' ? fail('schema-invalid', [{ ...scan.issue, message: `not JSON: ${scan.issue.message}` }]) : fail('payload-bomb', [scan.issue])
    let value: unknown
    try {
      value = JSON.parse(fatalUtf8.decode(bytes))
    } catch (err) {
      return fail('schema-invalid', [{ path: '', message: `not JSON: ${(err as Error).message.slice(0, 200)}`, keyword: 'syntax' }])
    }
    if (uri == null) return { ok: true, value }
    let validate
    try {
      validate = await registry.validator(uri.uri, { signal })
    } catch (err) {
      return fail('schema-unknown', [{ path: '', message: (err as Error).message.slice(0, 300), keyword: 'schema' }])
    }
    const errors = validate(value)
    if (errors.length > 0) return fail('schema-invalid', errors)
    if (accept != null && accept.length > 0 && !accept.includes(uri.uri)) {
      try {
        return { ok: true, ...(await registry.translate(value, uri.uri, accept, { signal })) }
      } catch (err) {
        if (err instanceof TranslationError) return fail('schema-unknown', [{ path: '', message: err.message, keyword: 'accept' }])
        throw err
      }
    }
    return { ok: true, value, schema: uri.uri }
  }

  return {
    limits,
    counters,
    async checkIncoming (env, options = {}) {
      const r = await check(env, options.signal, options.accept)
      counters[r.ok ? 'ok' : r.reason]++
      return r
    },
    async checkOutgoing (fields, options = {}) {
      const r = await check(fields, options.signal)
      if (r.ok) return
      const first = r.errors[0]
      const summary = `${first?.path !== '' && first?.path != null ? first.path + ': ' : ''}${first?.message ?? ''}${r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : ''}`
      const details = { schema: fields.schema, errors: r.errors }
      if (r.reason === 'payload-bomb') throw new PayloadLimitError(`payload exceeds a limit: ${summary}`, { details })
      if (r.reason === 'schema-unknown') throw new SchemaNotFoundError(`schema ${fields.schema ?? ''} cannot be resolved: ${summary}`, { details })
      throw new SchemaValidationError(`payload does not match ${fields.schema ?? 'its schema'}: ${summary}`, { details })
    },
    async checkValue (schema, value, options = {}) {
      return (await registry.validator(schema, options))(value)
    }
  }
}

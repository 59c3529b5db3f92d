/**
 * The one table of error codes at the API boundary: code → HTTP status → meaning.
 * Every error response (HTTP and WebSocket) has the body `{ error: { code, message, details? } }`.
 * docs/API.md lists the same table; test/api/errors.test.ts checks they agree.
 * Pure: used by the server, and by clients (remote SDK, CLI) to rebuild typed errors.
 */
import * as core from '../core/errors.ts'
import * as semantic from '../semantic/errors.ts'
import { FedmeshError, ConflictError, TooManyRequestsError, NotSupportedError } from '../core/errors.ts'
// The store's errors only (no backend): a client rebuilding typed errors must not load node:sqlite.
import * as storeErrors from '../store/errors.ts'
import { QuotaExceededError } from '../store/errors.ts'
import type { ErrorJson } from './protocol.ts'

// Re-exported for the API's callers; the classes live with the others in core/errors.ts.
export { ConflictError, TooManyRequestsError, NotSupportedError }

export interface ErrorEntry { status: number, meaning: string }

export const ERROR_TABLE = {
  InvalidArgumentError: { status: 400, meaning: 'A request field is missing, malformed or out of range (also every request-validation failure).' },
  InvalidTopicError: { status: 400, meaning: 'A topic or subscription pattern is not valid.' },
  InvalidEnvelopeError: { status: 400, meaning: 'An envelope (from a remote agent) does not decode, verify or fit this node.' },
  MessageTooLargeError: { status: 400, meaning: 'The request body or the envelope is over the size limit.' },
  UnauthorizedError: { status: 401, meaning: 'Missing or wrong bearer token; a remote agent failed its key proof or used another agent\'s id.' },
  NotFoundError: { status: 404, meaning: 'No such route or object.' },
  AgentNotFoundError: { status: 404, meaning: 'No record of the agent could be found (directory, then DHT).' },
  ConflictError: { status: 409, meaning: 'The agent is already attached to this node.' },
  TooManyRequestsError: { status: 429, meaning: 'A per-connection limit was reached (subscriptions, requests in flight).' },
  QuotaExceededError: { status: 429, meaning: 'A durable message would exceed an inbox quota (`details.quota`, `limit`, `current`); nothing was stored.' },
  MessageExpiredError: { status: 400, meaning: 'A durable message was past its TTL when it reached the store; nothing was stored.' },
  InvalidQueryError: { status: 400, meaning: 'A message-log filter, page option or cursor is malformed.' },
  StoreReadOnlyError: { status: 409, meaning: 'A write on a store opened read-only.' },
  StoreClosedError: { status: 503, meaning: 'The store is not open (the node is starting or stopping).' },
  StoreUnavailableError: { status: 503, meaning: 'The PostgreSQL store cannot be reached.' },
  StoreIOError: { status: 500, meaning: 'The store failed to read or write (I/O error, disk full); a failed write wrote nothing.' },
  StoreCorruptError: { status: 500, meaning: 'Stored data fails its integrity check; it is not served.' },
  StoreVersionError: { status: 500, meaning: 'The store is not a fedmesh store or has a newer schema.' },
  NotSupportedError: { status: 501, meaning: 'Not available: the node speaks another version of the WebSocket protocol.' },
  UnreachableError: { status: 502, meaning: 'The recipient\'s home node could not be reached.' },
  DeliveryFailedError: { status: 502, meaning: 'The recipient\'s node refused the message.' },
  RemoteError: { status: 502, meaning: 'The responder\'s handler failed; `details.code` carries its error code.' },
  NoRespondersError: { status: 503, meaning: 'The recipient exists but does not answer requests.' },
  ClosedError: { status: 503, meaning: 'The agent or node is closing.' },
  TimeoutError: { status: 504, meaning: 'No reply or confirmation in time.' },
  // The semantic layer (docs/SEMANTIC.md §12).
  SchemaValidationError: { status: 422, meaning: 'The payload does not match the schema it names; `details.errors` lists `{ path, message, keyword }`.' },
  PayloadLimitError: { status: 413, meaning: 'The payload breaks a bomb limit (size, depth, keys, string or array length); `details.errors`.' },
  SchemaNotFoundError: { status: 404, meaning: 'The schema or protocol URI (or hash) is not known here and could not be fetched from the mesh.' },
  InvalidDocumentError: { status: 400, meaning: 'A schema or protocol document is malformed, badly signed, over the limits, or does not compile.' },
  IncompatibleSchemaError: { status: 409, meaning: 'A new minor/patch version does not accept everything its predecessor accepted, or is lower than one published (`details.path`).' },
  SchemaConflictError: { status: 409, meaning: 'The URI is taken by another document, the name belongs to another publisher, or the name is reserved.' },
  InvalidProtocolError: { status: 400, meaning: 'A protocol definition is not valid (`details.problems`).' },
  ProtocolViolationError: { status: 409, meaning: 'The message is not a legal next step of its conversation (`details.expected`).' },
  NoCommonVersionError: { status: 409, meaning: 'The agents share no version of the schema or protocol (`details.mine`, `details.theirs`).' },
  TranslationError: { status: 422, meaning: 'No translator chain between the schema versions, or a translator gave an invalid value.' },
  ContractError: { status: 400, meaning: 'A market contract is malformed or its signatures do not verify.' }
} as const satisfies Record<string, ErrorEntry>

export type ApiErrorCode = keyof typeof ERROR_TABLE | 'InternalError'

/** Status for anything not in the table. */
export const DEFAULT_STATUS = 500

export function statusOf (code: string): number {
  return (ERROR_TABLE as Record<string, ErrorEntry>)[code]?.status ?? DEFAULT_STATUS
}

export interface ErrorBody { error: ErrorJson }

interface FastifyLikeError { code?: string, statusCode?: number, validation?: Array<{ instancePath?: string, message?: string, params?: unknown }>, validationContext?: string, message?: string }

/** Maps anything thrown to its status and JSON body. */
export function errorBody (err: unknown): { status: number, body: ErrorBody } {
  if (err instanceof FedmeshError) {
    const error: ErrorJson = { code: err.code, message: err.message }
    if (err.details != null) error.details = err.details
    return { status: statusOf(err.code), body: { error } }
  }
  const e = (err ?? {}) as FastifyLikeError
  if (e.validation != null) {
    // Fastify request validation: one message naming the field.
    const first = e.validation[0]
    const where = `${e.validationContext ?? 'request'}${first?.instancePath ?? ''}`
    const message = first != null ? `${where} ${first.message ?? 'is invalid'}` : (e.message ?? 'invalid request')
    return { status: 400, body: { error: { code: 'InvalidArgumentError', message, details: { validation: e.validation.slice(0, 5).map(v => ({ path: `${e.validationContext ?? 'request'}${v.instancePath ?? ''}`, message: v.message, params: v.params })) } } } }
  }
  if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: statusOf('MessageTooLargeError'), body: { error: { code: 'MessageTooLargeError', message: e.message ?? 'request body too large' } } }
  }
  if (e.statusCode === 404) return { status: 404, body: { error: { code: 'NotFoundError', message: e.message ?? 'not found' } } }
  // Fastify gives the same error, without a cause, for JSON that does not parse and for JSON
  // refused for its __proto__ / constructor.prototype keys; its message named only the first.
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return { status: 400, body: { error: { code: 'InvalidArgumentError', message: 'the body is not valid JSON, or has a __proto__ or constructor.prototype key' } } }
  }
  // Fastify's other client errors: bad JSON, __proto__ keys, wrong content type, empty body.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: 400, body: { error: { code: 'InvalidArgumentError', message: e.message ?? 'bad request' } } }
  }
  return { status: DEFAULT_STATUS, body: { error: { code: 'InternalError', message: e.message ?? String(err) } } }
}

type ErrorClass = new (message?: string, options?: { cause?: unknown, details?: Record<string, unknown> }) => FedmeshError

const CLASSES = new Map<string, ErrorClass>()
for (const v of [...Object.values(core), ...Object.values(semantic), ...Object.values(storeErrors)]) {
  const code = (v as { code?: unknown }).code
  if (typeof v === 'function' && typeof code === 'string' && v.prototype instanceof FedmeshError) CLASSES.set(code, v as ErrorClass)
}

/**
 * Rebuilds a typed error from an error body, so `err instanceof NoRespondersError` and
 * `err.code` work the same for remote and in-process agents.
 */
export function errorFromJson (e: Partial<ErrorJson> | undefined, fallbackMessage: string = 'request failed'): FedmeshError {
  const code = typeof e?.code === 'string' ? e.code : 'InternalError'
  const message = typeof e?.message === 'string' ? e.message : fallbackMessage
  const details = e?.details != null && typeof e.details === 'object' ? e.details as Record<string, unknown> : undefined
  if (code === 'QuotaExceededError' && details != null) {
    const err = new QuotaExceededError(details as unknown as ConstructorParameters<typeof QuotaExceededError>[0])
    err.message = message
    return err
  }
  const Cls = CLASSES.get(code)
  return Cls != null ? new Cls(message, { details }) : new FedmeshError(code, message, { details })
}

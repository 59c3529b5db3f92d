/**
 * One error class per failure, identified by a stable `code` (also the `name`).
 * The HTTP API maps codes to statuses in one table (src/api/errors.ts).
 */
export class FedmeshError extends Error {
  readonly code: string
  readonly details?: Record<string, unknown>

  constructor (code: string, message: string, options: { cause?: unknown, details?: Record<string, unknown> } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.name = code
    this.details = options.details
  }

  toJSON (): Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.details != null ? { details: this.details } : {}) }
  }
}

/** Makes an error class with a stable `code` (also its `name`) and a default message. */
export function errorClass (code: string, defaultMessage: string) {
  return class extends FedmeshError {
    static readonly code = code
    constructor (message: string = defaultMessage, options: { cause?: unknown, details?: Record<string, unknown> } = {}) {
      super(code, message, options)
    }
  }
}

export const InvalidArgumentError = errorClass('InvalidArgumentError', 'invalid argument')
export const InvalidEnvelopeError = errorClass('InvalidEnvelopeError', 'invalid envelope')
export const InvalidTopicError = errorClass('InvalidTopicError', 'invalid topic')
export const TimeoutError = errorClass('TimeoutError', 'operation timed out')
export const AbortError = errorClass('AbortError', 'operation aborted')
export const NoRespondersError = errorClass('NoRespondersError', 'no responder for request')
export const AgentNotFoundError = errorClass('AgentNotFoundError', 'agent not found')
export const UnreachableError = errorClass('UnreachableError', 'recipient unreachable')
export const DeliveryFailedError = errorClass('DeliveryFailedError', 'delivery failed')
export const RemoteError = errorClass('RemoteError', 'remote handler failed')
export const MessageTooLargeError = errorClass('MessageTooLargeError', 'message too large')
export const NotStartedError = errorClass('NotStartedError', 'node not started')
export const UnauthorizedError = errorClass('UnauthorizedError', 'missing or invalid bearer token')
export const NotFoundError = errorClass('NotFoundError', 'not found')
export const ClosedError = errorClass('ClosedError', 'closed')
export const ConflictError = errorClass('ConflictError', 'already attached')
export const TooManyRequestsError = errorClass('TooManyRequestsError', 'too many requests')
export const NotSupportedError = errorClass('NotSupportedError', 'not supported')

/** Turns an AbortSignal's reason into a typed fedmesh error. */
export function abortReason (signal: AbortSignal, what: string): FedmeshError {
  const reason = signal.reason
  if (reason instanceof FedmeshError) return reason
  if (reason instanceof Error && reason.name === 'TimeoutError') return new TimeoutError(`${what} timed out`, { cause: reason })
  return new AbortError(`${what} aborted`, { cause: reason })
}

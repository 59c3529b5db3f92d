/**
 * The one table of error codes at the HTTP boundary: code → status. Documented in docs/API.md.
 */
import { FedmeshError } from '../core/errors.ts'

export const HTTP_STATUS: Record<string, number> = {
  InvalidArgumentError: 400,
  InvalidTopicError: 400,
  InvalidEnvelopeError: 400,
  MessageTooLargeError: 413,
  UnauthorizedError: 401,
  NotFoundError: 404,
  AgentNotFoundError: 404,
  NoRespondersError: 503,
  TimeoutError: 504,
  AbortError: 499,
  UnreachableError: 502,
  DeliveryFailedError: 502,
  RemoteError: 502,
  ClosedError: 503
}

export function errorBody (err: unknown): { status: number, body: { error: { code: string, message: string, details?: unknown } } } {
  if (err instanceof FedmeshError) {
    return { status: HTTP_STATUS[err.code] ?? 500, body: { error: { code: err.code, message: err.message, ...(err.details != null ? { details: err.details } : {}) } } }
  }
  const e = err as { validation?: unknown, statusCode?: number, message?: string }
  if (e?.validation != null || e?.statusCode === 400) return { status: 400, body: { error: { code: 'InvalidArgumentError', message: e.message ?? 'bad request' } } }
  if (e?.statusCode === 413) return { status: 413, body: { error: { code: 'MessageTooLargeError', message: e.message ?? 'body too large' } } }
  if (e?.statusCode === 404) return { status: 404, body: { error: { code: 'NotFoundError', message: e.message ?? 'not found' } } }
  return { status: 500, body: { error: { code: 'InternalError', message: e?.message ?? String(err) } } }
}

/**
 * Errors of the semantic layer, one class per failure with a stable `code` (also the `name`),
 * following src/core/errors.ts. Rejections at ingress are returned as reason values instead
 * (see validate.ts, conversation.ts); these classes are what the SDK, the registry and the
 * CLI throw.
 */
import { FedmeshError } from '../core/errors.ts'

type ErrorOptions = { cause?: unknown, details?: Record<string, unknown> }

function errorClass (code: string, defaultMessage: string) {
  return class extends FedmeshError {
    static readonly code = code
    constructor (message: string = defaultMessage, options: ErrorOptions = {}) {
      super(code, message, options)
    }
  }
}

/** One validation problem: a JSON pointer into the payload and what is wrong there. */
export interface ValidationIssue {
  /** JSON pointer into the instance (`''` = the whole payload). */
  path: string
  message: string
  /** The JSON Schema keyword or the limit that failed (`type`, `required`, `maxDepth`, …). */
  keyword?: string
}

/** A payload does not match its schema. `details.errors`: `ValidationIssue[]`. */
export const SchemaValidationError = errorClass('SchemaValidationError', 'payload does not match its schema')
/** A payload breaks a size/shape limit checked before parsing (depth, size, keys, …). `details.errors`. */
export const PayloadLimitError = errorClass('PayloadLimitError', 'payload exceeds a limit')
/** A schema URI could not be resolved, locally or on the network. */
export const SchemaNotFoundError = errorClass('SchemaNotFoundError', 'schema not found')
/** A schema or protocol document is malformed, badly signed, or breaks the document limits. */
export const InvalidDocumentError = errorClass('InvalidDocumentError', 'invalid registry document')
/** A new minor/patch version does not provably accept what the previous one accepted. `details.path`, `details.reason`. */
export const IncompatibleSchemaError = errorClass('IncompatibleSchemaError', 'schema version is incompatible with its predecessor')
/** Another document already holds this URI, or another publisher owns this name. */
export const SchemaConflictError = errorClass('SchemaConflictError', 'schema URI already taken')
/** A protocol definition is not valid (unknown states, ambiguous transitions, dead ends, …). `details.problems`. */
export const InvalidProtocolError = errorClass('InvalidProtocolError', 'invalid protocol definition')
/** A message is not a legal next step of its conversation. `details.expected`. */
export const ProtocolViolationError = errorClass('ProtocolViolationError', 'message is not a legal next step')
/** Two agents share no version of a schema or protocol. `details.mine`, `details.theirs`. */
export const NoCommonVersionError = errorClass('NoCommonVersionError', 'no common version')
/** No translator chain between two schema versions, or a translator produced an invalid value. */
export const TranslationError = errorClass('TranslationError', 'cannot translate between schema versions')
/** A market contract is malformed or its signatures do not verify. */
export const ContractError = errorClass('ContractError', 'invalid contract')

/** Every code this layer throws, for the API's error table. */
export const SEMANTIC_ERROR_CODES = [
  'SchemaValidationError', 'PayloadLimitError', 'SchemaNotFoundError', 'InvalidDocumentError',
  'IncompatibleSchemaError', 'SchemaConflictError', 'InvalidProtocolError', 'ProtocolViolationError',
  'NoCommonVersionError', 'TranslationError', 'ContractError'
] as const

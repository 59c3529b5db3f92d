/**
 * The Ajv set-up shared by registries: JSON Schema 2020-12, unknown keywords refused
 * (a typo must not silently validate nothing), all errors collected, no schema registered
 * by `$id`, patterns run by V8's linear-time engine (bounds.ts), and the ajv-formats
 * formats except `regex` (which would compile regular expressions taken from payloads).
 */
import { createRequire } from 'node:module'
import type { Ajv2020 } from 'ajv/dist/2020.js'
import type { ErrorObject } from 'ajv'
import { linearRegExp } from './bounds.ts'
import type { ValidationIssue } from './errors.ts'

type FormatsPlugin = (ajv: Ajv2020, opts?: { formats?: string[], mode?: 'fast' | 'full' }) => Ajv2020

// Ajv and ajv-formats (CommonJS) are loaded on the first compile, not when a node starts:
// most of a node's life may pass without a schema, and loading them costs start-up time.
const require = createRequire(import.meta.url)
let loaded: { Ajv: typeof Ajv2020, addFormats: FormatsPlugin } | undefined
function ajvModules (): { Ajv: typeof Ajv2020, addFormats: FormatsPlugin } {
  if (loaded == null) {
    const formats = require('ajv-formats') as FormatsPlugin & { default?: FormatsPlugin }
    loaded = { Ajv: (require('ajv/dist/2020.js') as { Ajv2020: typeof Ajv2020 }).Ajv2020, addFormats: formats.default ?? formats }
  }
  return loaded
}

export const ALLOWED_FORMATS = [
  'date', 'time', 'date-time', 'iso-time', 'iso-date-time', 'duration', 'uri', 'uri-reference', 'uri-template', 'url',
  'email', 'hostname', 'ipv4', 'ipv6', 'uuid', 'json-pointer', 'json-pointer-uri-fragment', 'relative-json-pointer',
  'byte', 'int32', 'int64', 'float', 'double', 'password', 'binary'
]

const linearEngine = Object.assign((pattern: string) => linearRegExp(pattern), { code: 'linearRegExp' })

export function createAjv (): Ajv2020 {
  const { Ajv, addFormats } = ajvModules()
  const ajv = new Ajv({
    strictSchema: true,
    strictNumbers: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allErrors: true,
    addUsedSchema: false,
    validateSchema: true,
    logger: false,
    code: { regExp: linearEngine }
  })
  addFormats(ajv, { formats: ALLOWED_FORMATS, mode: 'full' })
  return ajv
}

export const MAX_REPORTED_ERRORS = 20

/** Ajv errors as ValidationIssues: JSON pointer and message, naming the offending property where Ajv keeps it in params. */
export function toIssues (errors: readonly ErrorObject[] | null | undefined): ValidationIssue[] {
  if (errors == null) return []
  return errors.slice(0, MAX_REPORTED_ERRORS).map((e) => {
    const params = e.params as Record<string, unknown>
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') message = `must not have property ${JSON.stringify(params.additionalProperty)}`
    if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) message = `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`.slice(0, 300)
    return { path: e.instancePath, message, keyword: e.keyword }
  })
}

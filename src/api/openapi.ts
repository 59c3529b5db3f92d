/**
 * The OpenAPI 3.1 document served at /openapi.json. It is assembled from the routes as
 * they are registered (their request schemas and `config.doc`), so every route is in it
 * and the documented request shapes are the ones actually enforced.
 */
import { ERROR_TABLE } from './errors.ts'
import { components } from './schemas.ts'

export interface RouteDoc {
  summary: string
  description?: string
  /** Success response: a `#/components/schemas` name, or a literal schema. */
  response?: keyof typeof components | Record<string, unknown>
  /** Content type of the success response; default application/json. */
  produces?: string
  /** Status of the success response; default 200. */
  status?: number
  /** No bearer token needed. */
  public?: boolean
  /** Error codes this route is expected to return (besides 400/401/500). */
  errors?: Array<keyof typeof ERROR_TABLE>
}

export interface RegisteredRoute {
  method: string
  url: string
  schema?: { body?: unknown, querystring?: unknown, params?: unknown }
  doc: RouteDoc
}

const ref = (name: string): { $ref: string } => ({ $ref: `#/components/schemas/${name}` })

function parameters (where: 'query' | 'path', schema: unknown): unknown[] {
  const obj = schema as { properties?: Record<string, unknown>, required?: string[] } | undefined
  return Object.entries(obj?.properties ?? {}).map(([name, sch]) => ({
    name,
    in: where,
    required: where === 'path' || (obj?.required ?? []).includes(name),
    schema: sch
  }))
}

function errorResponse (codes: string[]): unknown {
  return {
    description: `Error (${codes.join(', ')})`,
    content: { 'application/json': { schema: ref('Error') } }
  }
}

export function buildOpenApi (routes: RegisteredRoute[], info: { version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const url = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const d = r.doc
    const responses: Record<string, unknown> = {}
    const ok = d.response == null ? { type: 'object' } : typeof d.response === 'string' ? ref(d.response) : d.response
    responses[String(d.status ?? 200)] = {
      description: d.summary,
      content: { [d.produces ?? 'application/json']: { schema: ok } }
    }
    // Group the route's errors by status, as the table says.
    const byStatus = new Map<number, string[]>()
    const codes: string[] = ['InvalidArgumentError', ...(d.public === true ? [] : ['UnauthorizedError']), ...(d.errors ?? [])]
    for (const code of codes) {
      const status = (ERROR_TABLE as Record<string, { status: number }>)[code].status
      byStatus.set(status, [...(byStatus.get(status) ?? []), code])
    }
    for (const [status, list] of byStatus) responses[String(status)] = errorResponse(list)
    responses['500'] = errorResponse(['InternalError'])
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${url.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: d.summary,
      ...(d.description != null ? { description: d.description } : {}),
      ...(d.public === true ? { security: [] } : {}),
      parameters: [...parameters('path', r.schema?.params), ...parameters('query', r.schema?.querystring)],
      responses
    }
    if (r.schema?.body != null) op.requestBody = { required: true, content: { 'application/json': { schema: r.schema.body } } }
    paths[url] = { ...paths[url], [r.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'fedmesh node API',
      version: info.version,
      description: 'HTTP + WebSocket API of a fedmesh node. Errors are `{ error: { code, message, details? } }`; ' +
        'the code → status table is in docs/API.md. The WebSocket protocol of /v1/ws is described there too.'
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Token from `<data dir>/api.token`.' } },
      schemas: components
    },
    security: [{ bearer: [] }],
    paths
  }
}

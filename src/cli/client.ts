/**
 * How the CLI reaches a running node: the data dir gives the API address (node.json,
 * written by the running node, else config.json's `api`) and the bearer token
 * (api.token). Reading never creates anything in the dir.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import WebSocket from 'ws'
import { readApiToken, readRuntimeInfo } from '../node/datadir.ts'
import { WS_LIMITS } from '../api/protocol.ts'
import { statusOf } from '../api/errors.ts'
import { CliError } from './args.ts'

export interface NodeApi { dir: string, url: string, token: string }

function pidAlive (pid: unknown): boolean {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The node already running on DIR, if any: node.json names a live pid, and its API (when it
 * has one) answers. A pid reused by another process after a node was killed does not answer.
 */
export async function runningNode (dir: string): Promise<{ pid: number, api?: string } | undefined> {
  const info = await readRuntimeInfo(dir)
  if (info == null || !pidAlive(info.pid)) return undefined
  if (info.api == null) return { pid: info.pid }
  try {
    await fetch(`${info.api}/healthz`, { signal: AbortSignal.timeout(2000) })
    return { pid: info.pid, api: info.api }
  } catch {
    return undefined
  }
}

function urlOf (api: string): string {
  return `http://${api}`
}

export async function locateNode (dir: string): Promise<NodeApi> {
  if (!existsSync(join(dir, 'node.key'))) throw new CliError(`no fedmesh node in ${dir} (create one with: fedmesh init --dir ${dir})`)
  const token = await readApiToken(dir)
  if (token == null || token === '') throw new CliError(`no API token in ${join(dir, 'api.token')}`)
  const info = await readRuntimeInfo(dir)
  if (info?.api != null && pidAlive(info.pid)) return { dir, url: info.api, token }
  let api: unknown
  try {
    api = (JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { api?: unknown }).api
  } catch (err) {
    throw new CliError(`cannot read ${join(dir, 'config.json')}: ${(err as Error).message}`)
  }
  if (api === false) throw new CliError(`the node in ${dir} has its API disabled (config.json "api": false)`)
  if (typeof api !== 'string' || /:0$/.test(api)) {
    throw new CliError(`the node in ${dir} is not running (config api ${JSON.stringify(api)}: its address is only known while it runs); start it with: fedmesh node start --dir ${dir}`)
  }
  return { dir, url: urlOf(api), token }
}

function notRunning (node: NodeApi, detail: string): CliError {
  return new CliError(`cannot reach the node of ${node.dir} at ${node.url}: ${detail} (is it running? fedmesh node start --dir ${node.dir})`)
}

/** Error from an API error body: `Code: message`, exit 2 for bad input, else 1. */
export function apiError (status: number, body: unknown): CliError {
  const e = (body as { error?: { code?: string, message?: string } } | undefined)?.error
  const code = e?.code ?? `HTTP${status}`
  return new CliError(`${code}: ${e?.message ?? 'request failed'}`, { code, exitCode: statusOf(code) === 400 ? 2 : 1 })
}

export async function call<T = any> (node: NodeApi, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs: number = 60_000): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
  let res: Response
  try {
    res = await fetch(node.url + path, {
      method,
      headers: { authorization: `Bearer ${node.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    const e = err as Error & { cause?: Error & { code?: string } }
    if (e.name === 'TimeoutError') throw new CliError(`the node of ${node.dir} at ${node.url} did not answer within ${timeoutMs} ms`, { code: 'TimeoutError' })
    throw notRunning(node, e.cause?.code ?? e.cause?.message ?? e.message)
  }
  const text = await res.text()
  let data: unknown
  try { data = text === '' ? undefined : JSON.parse(text) } catch { data = undefined }
  if (!res.ok) throw apiError(res.status, data)
  return data as T
}

/** Opens the node's WebSocket and resolves once the node said hello. */
export async function openSocket (node: NodeApi, timeoutMs: number = 10_000): Promise<WebSocket> {
  const ws = new WebSocket(node.url.replace(/^http/, 'ws') + '/v1/ws', {
    headers: { authorization: `Bearer ${node.token}` },
    maxPayload: WS_LIMITS.maxMessageBytes
  })
  return await new Promise<WebSocket>((resolve, reject) => {
    let settled = false
    const settle = (err?: CliError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.off('error', onError)
      ws.off('unexpected-response', onResponse)
      ws.off('message', onHello)
      if (err == null) { resolve(ws); return }
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    const timer = setTimeout(() => { settle(new CliError(`the node of ${node.dir} at ${node.url} did not open a WebSocket within ${timeoutMs} ms`)) }, timeoutMs)
    const onResponse = (req: { destroy: () => void }, res: import('node:http').IncomingMessage): void => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { if (text.length < 4096) text += c })
      res.on('end', () => {
        let data: unknown
        try { data = JSON.parse(text) } catch {}
        settle(apiError(res.statusCode ?? 0, data))
        req.destroy()
      })
    }
    const onError = (err: Error & { code?: string }): void => { settle(notRunning(node, err.code ?? err.message)) }
    const onHello = (raw: WebSocket.RawData): void => {
      let m: { op?: string } = {}
      try { m = JSON.parse(raw.toString()) } catch {}
      settle(m.op === 'hello' ? undefined : new CliError(`unexpected first message from the node at ${node.url}`))
    }
    ws.on('unexpected-response', onResponse)
    ws.on('error', onError)
    ws.once('message', onHello)
  })
}

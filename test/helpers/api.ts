/**
 * Helpers for the API and remote-agent tests: in-process nodes in temp dirs on loopback,
 * and a small WebSocket client that waits on messages (every wait bounded).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createNode, type MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { CreateNodeOptions, Message, Subscription } from '../../src/node/types.ts'

export function tempDir (prefix: string = 'fedmesh-api-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Nodes started by a test file; `stopAll` stops them and removes their dirs. */
export class Nodes {
  private readonly started: Array<{ node: MeshNodeImpl, dir: string }> = []

  async start (opts: Partial<CreateNodeOptions> = {}): Promise<MeshNodeImpl> {
    const dir = tempDir()
    const node = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, ...opts })
    this.started.push({ node, dir })
    return node
  }

  async stopAll (): Promise<void> {
    await Promise.allSettled(this.started.map(async ({ node, dir }) => {
      await node.stop()
      rmSync(dir, { recursive: true, force: true })
    }))
  }
}

/** Waits until `pred` holds, polled every 50 ms; throws naming `what` after `ms`. */
export async function until (pred: () => boolean | Promise<boolean>, what: string, ms: number = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

export async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms: ${what}`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** The next `n` messages of `sub` (fewer if it ends), each within `ms`. */
export async function take (sub: Subscription, n: number, ms: number = 20_000): Promise<Message[]> {
  const out: Message[] = []
  const it = sub[Symbol.asyncIterator]()
  while (out.length < n) {
    const r = await within(it.next(), ms, `message ${out.length + 1} of ${n}`)
    if (r.done === true) break
    out.push(r.value)
  }
  return out
}

export type WsMsg = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** A raw client of the node's WebSocket protocol that records what it receives. */
export class WsClient {
  readonly ws: WebSocket
  readonly received: WsMsg[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  private readonly waiters = new Set<() => void>()
  private isClosed = false

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (raw: WebSocket.RawData) => {
      this.received.push(JSON.parse(raw.toString()))
      for (const w of this.waiters) w()
    })
    this.closed = new Promise(resolve => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.isClosed = true
        resolve({ code, reason: reason.toString() })
        for (const w of this.waiters) w()
      })
    })
    ws.on('error', () => {})
  }

  /** Opens a connection; rejects with the HTTP status when the upgrade is refused. */
  static async open (apiUrl: string, opts: { token?: string, query?: string } = {}): Promise<WsClient> {
    const url = apiUrl.replace(/^http/, 'ws') + '/v1/ws' + (opts.query ?? '')
    const ws = new WebSocket(url, { headers: opts.token != null ? { authorization: `Bearer ${opts.token}` } : {} })
    const client = new WsClient(ws)
    await within(new Promise<void>((resolve, reject) => {
      ws.once('open', () => { resolve() })
      ws.once('unexpected-response', (req, res) => {
        let body = ''
        res.on('data', (c: Buffer) => { body += c.toString() })
        res.on('end', () => { req.destroy(); reject(Object.assign(new Error(`HTTP ${String(res.statusCode)}`), { status: res.statusCode, body: JSON.parse(body) })) })
      })
      ws.once('error', reject)
    }), 10_000, 'websocket open')
    await client.next(m => m.op === 'hello', 'hello')
    return client
  }

  send (m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m))
  }

  /** The first received message (from `from` on) matching `pred`; waits for it. */
  async next (pred: (m: WsMsg) => boolean, what: string, timeoutMs: number = 30_000, from: number = 0): Promise<WsMsg> {
    const find = (): WsMsg | undefined => this.received.slice(from).find(pred)
    const found = find()
    if (found != null) return found
    return await new Promise<WsMsg>((resolve, reject) => {
      const check = (): void => {
        const m = find()
        if (m != null) { done(); resolve(m) } else if (this.isClosed) { done(); reject(new Error(`connection closed while waiting for ${what}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
    })
  }

  /** Sends a `rid` request and waits for its result. */
  async call (m: WsMsg, timeoutMs: number = 30_000): Promise<WsMsg> {
    const from = this.received.length
    this.send(m)
    return await this.next(x => x.op === 'result' && x.rid === m.rid, `result of ${String(m.op)}`, timeoutMs, from)
  }

  close (): void {
    if (!this.isClosed) this.ws.terminate()
  }
}

export function authHeader (token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

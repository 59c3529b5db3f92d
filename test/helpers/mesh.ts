/**
 * Starts and stops fedmesh nodes in separate OS processes (test/fixtures/node-process.ts)
 * and drives them over IPC. Every wait is bounded; `stopAll` kills what is left.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const FIXTURE = new URL('../fixtures/node-process.ts', import.meta.url).pathname

export interface DeliveredMessage { agent: string, sub: string, msg: { id: string, mode: string, type: string, topic?: string, from: string, to?: string[], data: any, seq?: number } }

export class RemoteError extends Error {
  code: string
  constructor (code: string, message: string) { super(message); this.code = code; this.name = code }
}

export class NodeProc {
  readonly child: ChildProcess
  readonly dir: string
  peerId = ''
  addresses: string[] = []
  readonly messages: DeliveredMessage[] = []
  /** Every other event the process pushed (`{ event: 'sent' | 'market', ... }`), in order. */
  readonly events: Array<{ event: string, [k: string]: any }> = []
  private rid = 0
  private readonly pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  private readonly waiters = new Set<() => void>()
  exited = false

  /** `netns`: run the node inside that network namespace (through `ip netns exec`). */
  constructor (opts: Record<string, unknown>, netns?: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'fedmesh-test-'))
    const args = [JSON.stringify({ dir: this.dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, ...opts })]
    this.child = netns == null
      ? fork(FIXTURE, args, { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : fork(FIXTURE, args, { execPath: '/usr/sbin/ip', execArgv: ['netns', 'exec', netns, process.execPath], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (m: any) => {
      if (m.event === 'message') { this.messages.push(m); for (const w of this.waiters) w() }
      else if (m.event === 'ready') { this.peerId = m.peerId; this.addresses = m.addresses; for (const w of this.waiters) w() }
      else if (m.event != null) { this.events.push(m); for (const w of this.waiters) w() }
      else if (m.rid != null) {
        const p = this.pending.get(m.rid)
        this.pending.delete(m.rid)
        if (m.ok) p?.resolve(m.result)
        else p?.reject(new RemoteError(m.error.code, m.error.message))
      }
    })
    this.child.on('exit', () => {
      this.exited = true
      for (const p of this.pending.values()) p.reject(new Error('node process exited'))
      this.pending.clear()
      for (const w of this.waiters) w()
    })
  }

  /** Resolves when `pred()` holds, re-checked on every event from the process. */
  async until (pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (pred()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (pred()) { done(); resolve() } else if (this.exited) { done(); reject(new Error(`node exited while waiting for ${what}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
    })
  }

  async ready (): Promise<this> {
    await this.until(() => this.peerId !== '', 'node ready', 60_000)
    return this
  }

  call<T = any> (op: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const rid = ++this.rid
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(rid); reject(new Error(`${op} timed out`)) }, timeoutMs)
      this.pending.set(rid, { resolve: (v) => { clearTimeout(timer); resolve(v) }, reject: (e) => { clearTimeout(timer); reject(e) } })
      this.child.send({ rid, op, ...args })
    })
  }

  received (sub: string): DeliveredMessage['msg'][] {
    return this.messages.filter(m => m.sub === sub).map(m => m.msg)
  }

  kill (): void {
    if (!this.exited) this.child.kill('SIGKILL')
  }

  async stop (): Promise<void> {
    if (this.exited) return
    const exited = new Promise(resolve => this.child.once('exit', resolve))
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.kill(), 5000)
    await exited
    clearTimeout(t)
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export class Mesh {
  readonly nodes: NodeProc[] = []

  async start (opts: Record<string, unknown> = {}): Promise<NodeProc> {
    const bootstrap = this.nodes.length > 0 ? [this.nodes[0].addresses[0]] : []
    const node = new NodeProc({ bootstrap, ...opts })
    this.nodes.push(node)
    return await node.ready()
  }

  async stopAll (): Promise<void> {
    await Promise.allSettled(this.nodes.map(n => n.stop()))
  }
}

/**
 * Drives the `fedmesh` command as a user would: `node_modules/.bin/node bin/fedmesh.js …`
 * in child processes. Short commands run to completion with a bounded wait; long-running
 * ones (node start, sub, fixtures) are read line by line and waited on by content.
 * `Procs.killAll` ends every child a test started.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const NODE = `${ROOT}node_modules/.bin/node`
export const BIN = `${ROOT}bin/fedmesh.js`

export interface RunResult { code: number | null, stdout: string, stderr: string }

/** Exactly one line on stderr, `fedmesh: …`, matching `re`. */
export function assertOneLineError (r: RunResult, re: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`)
  assert.match(lines[0], /^fedmesh: /)
  assert.match(lines[0], re)
}

/** A port nothing listens on right now (the OS picked it). */
export async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise(resolve => srv.close(resolve))
  return port
}

/** Collects a stream's lines and resolves waits on them. */
export class Lines {
  readonly lines: string[] = []
  private partial = ''
  private ended = false
  private readonly waiters = new Set<() => void>()

  constructor (stream: Readable) {
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n')
      this.partial = parts.pop() ?? ''
      this.lines.push(...parts)
      for (const w of this.waiters) w()
    })
    stream.on('end', () => {
      if (this.partial !== '') this.lines.push(this.partial)
      this.ended = true
      for (const w of this.waiters) w()
    })
  }

  get text (): string { return this.lines.join('\n') }

  /** The first line (from index `from` on) matching `pred`. */
  async wait (pred: (line: string) => boolean, what: string, timeoutMs: number = 60_000, from: number = 0): Promise<string> {
    const find = (): string | undefined => this.lines.slice(from).find(pred)
    const hit = find()
    if (hit != null) return hit
    return await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const line = find()
        if (line != null) { done(); resolve(line) } else if (this.ended) { done(); reject(new Error(`stream ended while waiting for ${what}; got:\n${this.text}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got:\n${this.text}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
    })
  }

  async waitJson<T = any> (pred: (v: any) => boolean, what: string, timeoutMs?: number, from?: number): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const line = await this.wait(l => { try { return pred(JSON.parse(l)) } catch { return false } }, what, timeoutMs, from)
    return JSON.parse(line) as T
  }
}

export class Proc {
  readonly child: ChildProcess
  readonly stdout: Lines
  readonly stderr: Lines
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  private done = false

  constructor (args: string[], opts: { script?: string, env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(NODE, [opts.script ?? BIN, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    this.stdout = new Lines(this.child.stdout as Readable)
    this.stderr = new Lines(this.child.stderr as Readable)
    this.exited = new Promise(resolve => {
      // 'close' comes after 'exit' once stdout and stderr are drained.
      this.child.on('close', (code, signal) => { this.done = true; resolve({ code, signal }) })
    })
  }

  get running (): boolean { return !this.done }

  /** Waits for the exit, killing the process if it takes longer than `timeoutMs`. */
  async exit (timeoutMs: number = 60_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, timeoutMs)
    try { return await this.exited } finally { clearTimeout(timer) }
  }

  kill (signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.done) this.child.kill(signal)
  }
}

/** Every child process a test file starts, so `killAll` can end them. */
export class Procs {
  private readonly all: Proc[] = []

  start (args: string[], opts: { script?: string, env?: NodeJS.ProcessEnv } = {}): Proc {
    const p = new Proc(args, opts)
    this.all.push(p)
    return p
  }

  /** Runs `fedmesh ARGS` to completion (killed after `timeoutMs`). */
  async run (args: string[], timeoutMs: number = 60_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const p = this.start(args, { env })
    const { code } = await p.exit(timeoutMs)
    return { code, stdout: p.stdout.text, stderr: p.stderr.text }
  }

  async killAll (): Promise<void> {
    for (const p of this.all) p.kill('SIGKILL')
    await Promise.all(this.all.map(async p => await p.exited))
  }
}

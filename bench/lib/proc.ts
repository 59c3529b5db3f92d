/**
 * Child processes of the benchmark: brokers (spawned binaries or node scripts) and workers
 * (node scripts with an IPC channel). Every child is registered so that `killAll` can end
 * it on exit, error or signal; every wait on a child is bounded.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import type { Broker, FromWorker, ToWorker } from './types.ts'
import { HOST, waitForPort } from './net.ts'

const live = new Set<ChildProcess>()
const TAIL_CHARS = 4000

/** A child process with its recent output kept for error messages. */
export class Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly exited: Promise<void>
  private output = ''
  private exitInfo: string | undefined

  constructor (name: string, child: ChildProcess) {
    this.name = name
    this.child = child
    live.add(child)
    const keep = (chunk: Buffer): void => { this.output = (this.output + chunk.toString()).slice(-TAIL_CHARS) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal != null ? `signal ${signal}` : `code ${String(code)}`
        live.delete(child)
        resolve()
      })
      // A spawn failure (missing binary) emits 'error' and no 'exit'.
      child.once('error', (err) => {
        this.exitInfo = `spawn error: ${err.message}`
        live.delete(child)
        resolve()
      })
    })
  }

  get alive (): boolean { return this.exitInfo === undefined }

  /** Why the process ended, with the last of its output. */
  describeExit (): string {
    const tail = this.output.trim()
    return `${this.name} exited (${this.exitInfo ?? 'running'})${tail !== '' ? `:\n${indent(tail)}` : ''}`
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop (graceMs = 3000): Promise<void> {
    if (!this.alive) return
    this.child.kill('SIGTERM')
    await this.waitExit(graceMs)
  }

  protected async waitExit (graceMs: number): Promise<void> {
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, graceMs)
    await this.exited
    clearTimeout(timer)
  }
}

/** A worker script (workers/*.ts) run by this same Node, talking over IPC. */
export class WorkerProc extends Proc {
  private readonly inbox: FromWorker[] = []
  private readonly waiters = new Set<() => void>()
  private failure: Error | undefined

  constructor (name: string, child: ChildProcess) {
    super(name, child)
    child.on('message', (m: FromWorker) => {
      if (m.type === 'error') this.failure ??= new Error(`${name}: ${m.message}`)
      else this.inbox.push(m)
      this.wake()
    })
    void this.exited.then(() => { this.wake() })
  }

  private wake (): void { for (const w of [...this.waiters]) w() }

  send (msg: ToWorker): void {
    if (this.child.connected) this.child.send(msg)
  }

  /** The next message of `type`; rejects on a worker error, its exit, or after `timeoutMs`. */
  async next<T extends FromWorker['type']> (type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const i = this.inbox.findIndex(m => m.type === type)
        if (i >= 0) {
          done()
          resolve(this.inbox.splice(i, 1)[0] as Extract<FromWorker, { type: T }>)
        } else if (this.failure != null) {
          done(); reject(this.failure)
        } else if (!this.alive) {
          done(); reject(new Error(this.describeExit()))
        }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: no '${type}' within ${timeoutMs} ms`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      check()
    })
  }

  /** Asks the worker to close its client and exit; kills it when it does not in time. */
  override async stop (graceMs = 5000): Promise<void> {
    if (!this.alive) return
    this.send({ type: 'stop' })
    await this.waitExit(graceMs)
  }
}

export function spawnProcess (name: string, command: string, args: string[]): Proc {
  return new Proc(name, spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** Extra Node flags and environment variables of a worker process. */
export interface ProcessSettings { execArgv?: string[], env?: Record<string, string> }

/** Runs a .ts script with the Node running the harness (the pinned Node 22). */
export function forkScript (name: string, script: URL, args: string[], opts: ProcessSettings = {}): WorkerProc {
  const child = fork(script, args, {
    execPath: process.execPath,
    execArgv: [...process.execArgv, ...(opts.execArgv ?? [])],
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  return new WorkerProc(name, child)
}

/** Kills every child still running; synchronous, so it also works from an 'exit' handler. */
export function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

/** Kills all children on exit and on SIGINT/SIGTERM (then runs `onSignal` and exits). */
export function installCleanup (onSignal: () => void): void {
  process.once('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: stopping all child processes\n`)
      killAll()
      onSignal()
      process.exit(130)
    })
  }
}

function indent (text: string): string {
  return text.split('\n').map(l => `    ${l}`).join('\n')
}

/**
 * Waits until a broker process listens on `port`, then hands it over as a Broker; if it
 * never does, stops it and reports why (with how it exited).
 */
export async function brokerWhenListening (proc: Proc, port: number, timeoutMs: number): Promise<Broker> {
  try {
    await waitForPort(port, timeoutMs, () => proc.alive)
  } catch (err) {
    await proc.stop()
    throw new Error(`${(err as Error).message}\n${proc.describeExit()}`)
  }
  return { info: { host: HOST, port }, stop: async () => { await proc.stop() } }
}

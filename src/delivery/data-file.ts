/**
 * One file of the node's data dir that a service rewrites whole as its state changes (the
 * durable service's pending receipts): each write goes to a temporary file, flushed to disk,
 * then renamed over the old one, so a reader finds the old contents or the new, never a mix.
 */
import { open, readFile, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'

export class DataFile {
  readonly path: string
  private readonly contents: () => Uint8Array | undefined
  /** The last write started: the next one waits for it (two writes never interleave). */
  private last: Promise<void> = Promise.resolve()
  /** A write waiting for its turn: later requests share it, since it reads the state when it starts. */
  private queued?: Promise<void>
  /** Set by `close`: no write starts after it. */
  private closed = false

  /** `contents()` is called when a write's turn comes: the bytes to write, or undefined when nothing changed. */
  constructor (dir: string, name: string, contents: () => Uint8Array | undefined) {
    this.path = join(dir, name)
    this.contents = contents
  }

  /** The file's bytes, or undefined when there is none yet; other read errors are thrown. */
  async read (): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  /** Writes the current contents; resolves once they are on disk (or nothing needed writing, or it is closed). */
  async save (): Promise<void> {
    if (this.queued !== undefined) return await this.queued
    const p = this.last.then(async () => {
      this.queued = undefined
      if (this.closed) return
      const bytes = this.contents()
      if (bytes !== undefined) await this.replace(bytes)
    })
    this.queued = p
    this.last = p.catch(() => {})
    await p
  }

  /**
   * Writes the current contents a last time (after the writes already asked for) and takes no
   * more: a service stopping leaves its file as of now, and nothing writes into the data dir
   * after its stop (a write racing its removal, or the next process's start).
   */
  async close (): Promise<void> {
    try {
      await this.save()
    } finally {
      this.closed = true
      await this.last
    }
  }

  private async replace (bytes: Uint8Array): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`
    const f = await open(tmp, 'w', 0o600)
    try {
      await f.writeFile(bytes)
      await f.sync()
    } finally {
      await f.close()
    }
    await rename(tmp, this.path)
    // The rename itself survives a power cut once the directory is flushed too.
    const d = await open(dirname(this.path), 'r')
    try { await d.sync() } finally { await d.close() }
  }
}

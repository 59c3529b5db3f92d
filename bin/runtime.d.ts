/** Types of bin/runtime.js (plain JavaScript: it must run before any build exists). */
export declare const NODE_START_V8_FLAGS: string
export declare const NODE_START_EXEC_ARGV: string[]
export declare const NODE_BUSY_V8_FLAGS: string
export declare const NODE_START_ENV: Record<string, string>
export declare function reexecForNode (env?: NodeJS.ProcessEnv): void
export declare function prepareNodeProcess (env?: NodeJS.ProcessEnv): Promise<void>
export declare function applyNodeV8Flags (env?: NodeJS.ProcessEnv): Promise<void>
export interface BusyRule { ticks: number, windows: number, share: number }
export declare const BUSY_RULES: BusyRule[]
export declare function switchWhenBusy (opts: { onBusy: () => void, delayMs?: number, idleTicks?: number, startupCpuMs?: number, armByMs?: number, tickMs?: number, rules?: BusyRule[], idleShare?: number, cpuUsage?: () => { user: number, system: number }, now?: () => number }): () => void
export declare function deferUndici (): void
export declare function useDist (env?: NodeJS.ProcessEnv): boolean
export declare function moduleUrl (path: string, env?: NodeJS.ProcessEnv): URL

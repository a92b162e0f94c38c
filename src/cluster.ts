import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import type { Config } from './config/index.js'

export interface Supervisor {
  /** Resolves with the exit code once every worker is gone after a stop. */
  stopped: Promise<number>
}

const RESTART_DELAY_MS = 500
/** A worker that dies sooner than this after starting counts toward a crash loop. */
const EARLY_DEATH_MS = 5000
const MAX_EARLY_DEATHS = 5

/**
 * The primary of `WORKERS=N`: forks N copies of the gateway that share the listening ports
 * (node:cluster hands connections out round robin), replaces a worker that dies, and on SIGTERM or
 * SIGINT asks each to shut down gracefully and exits when all have (0), or after SHUTDOWN_TIMEOUT
 * plus a second if some would not (1). A worker that keeps dying at start-up (a bad port, say)
 * stops the whole gateway instead of being restarted forever. Limits and the pool stay shared
 * because every worker uses the same Redis (the configuration refuses WORKERS > 1 without it).
 */
export function superviseWorkers (config: Config, log: Logger): Supervisor {
  let stopping = false
  let exitCode = 0
  let earlyDeaths = 0
  const started = new Map<Worker, number>()
  let resolveStopped: (code: number) => void = () => {}
  const stopped = new Promise<number>(resolve => { resolveStopped = resolve })

  const fork = (): void => {
    const worker = cluster.fork()
    started.set(worker, Date.now())
  }
  for (let i = 0; i < config.workers; i++) fork()
  log.info({ workers: config.workers, port: config.port }, 'primary: workers started')

  cluster.on('exit', (worker, code, signal) => {
    const since = started.get(worker) ?? 0
    started.delete(worker)
    if (stopping) {
      if (started.size === 0) resolveStopped(exitCode)
      return
    }
    log.error({ pid: worker.process.pid, code, signal }, 'primary: a worker exited; starting another')
    if (Date.now() - since < EARLY_DEATH_MS && ++earlyDeaths >= MAX_EARLY_DEATHS) {
      log.fatal({ deaths: earlyDeaths }, 'primary: workers keep dying at start-up; stopping')
      stop(1)
      return
    }
    setTimeout(() => { if (!stopping) fork() }, RESTART_DELAY_MS)
  })
  // listening, not online: a worker that cannot bind its port is online first, then dies
  cluster.on('listening', () => { earlyDeaths = 0 })

  function stop (code: number): void {
    if (stopping) return
    stopping = true
    exitCode = code
    for (const worker of started.keys()) worker.process.kill('SIGTERM')
    if (started.size === 0) resolveStopped(exitCode)
    setTimeout(() => {
      for (const worker of started.keys()) worker.process.kill('SIGKILL')
      resolveStopped(1)
    }, config.shutdownTimeout + 1000).unref()
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'primary: stopping the workers')
      stop(0)
    })
  }
  return { stopped }
}

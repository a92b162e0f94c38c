/** Polls `condition` until it holds; fails after `timeoutMs` instead of sleeping a fixed time. */
export async function waitFor (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

/**
 * Waits, when needed, until the current fixed rate-limit window (aligned to the epoch, as both
 * stores align it) has at least `marginMs` left, so that a test's requests do not straddle two
 * windows and see the count start again halfway.
 */
export async function clearOfWindowEdge (windowMs: number, marginMs = 5000): Promise<void> {
  const left = windowMs - (Date.now() % windowMs)
  if (left < marginMs) await new Promise(resolve => setTimeout(resolve, left + 50))
}

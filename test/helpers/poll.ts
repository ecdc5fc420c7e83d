/** Polling until something a user would observe holds: one implementation for every test file. */
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Calls `probe` until `ok` accepts its value; returns that value. After `timeoutMs` it throws,
 * naming `what` and the last value seen (what a failing test most needs to say).
 */
export async function eventually<T>(what: string, probe: () => Promise<T> | T, ok: (value: T) => boolean, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value) ?? String(value)} after ${timeoutMs / 1000} s`)
    await sleep(intervalMs)
  }
}

/** Calls `probe` until it gives a value other than undefined or false; returns it. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 200,
): Promise<T> {
  const value = await eventually(what, probe, (v) => v !== undefined && v !== false, timeoutMs, intervalMs)
  return value as T
}

import {describe, expect, it} from 'vitest'
import {Interrupts, STOP_SIGNALS, type SignalSource, type StopSignal} from '../dist/interrupts.js'

/** A process stand-in: records listeners and exit, and delivers signals on demand. */
function fakeProcess() {
  const listeners = new Map<StopSignal, Set<(signal: StopSignal) => void>>()
  const exits: number[] = []
  const source: SignalSource = {
    on: (signal, listener) => listeners.set(signal, (listeners.get(signal) ?? new Set()).add(listener)),
    off: (signal, listener) => listeners.get(signal)?.delete(listener),
    exit: ((code: number) => {
      exits.push(code)
    }) as SignalSource['exit'],
  }
  const deliver = (signal: StopSignal) => {
    for (const listener of listeners.get(signal) ?? []) listener(signal)
  }
  const listening = () => STOP_SIGNALS.filter((s) => (listeners.get(s)?.size ?? 0) > 0)
  return {source, deliver, exits, listening}
}

describe('Interrupts', () => {
  it('listens to Ctrl-C, SIGTERM and SIGHUP until disposed', () => {
    const proc = fakeProcess()
    const interrupts = new Interrupts(() => {}, proc.source)
    expect(proc.listening()).toEqual(['SIGINT', 'SIGTERM', 'SIGHUP'])
    interrupts.dispose()
    expect(proc.listening()).toEqual([])
  })

  it('the first signal runs the callbacks once and says what it starts; a later callback runs at once', () => {
    const proc = fakeProcess()
    const written: string[] = []
    const interrupts = new Interrupts((t) => written.push(t), proc.source)
    interrupts.action = 'stopping the handler'
    const seen: string[] = []
    interrupts.onInterrupt((s) => seen.push(`a:${s}`))
    const cancelled = interrupts.onInterrupt((s) => seen.push(`b:${s}`))
    cancelled()
    proc.deliver('SIGTERM')
    expect(seen).toEqual(['a:SIGTERM'])
    expect(interrupts.signal).toBe('SIGTERM')
    expect(written.join('')).toContain('SIGTERM: stopping the handler…')
    interrupts.onInterrupt((s) => seen.push(`late:${s}`))
    expect(seen).toEqual(['a:SIGTERM', 'late:SIGTERM'])
  })

  it('a second signal only says that teardown goes on; the third quits with 130', () => {
    const proc = fakeProcess()
    const written: string[] = []
    const interrupts = new Interrupts((t) => written.push(t), proc.source)
    let calls = 0
    interrupts.onInterrupt(() => calls++)
    proc.deliver('SIGINT')
    proc.deliver('SIGINT')
    expect(calls).toBe(1)
    expect(proc.exits).toEqual([])
    expect(written[1]).toMatch(/still ending the intercept.*once more to quit at once/)
    proc.deliver('SIGINT')
    expect(proc.exits).toEqual([130])
    expect(written[2]).toMatch(/The daemon removes what is left/)
  })
})

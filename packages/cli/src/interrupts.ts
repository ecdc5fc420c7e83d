/** The signals that mean "stop": Ctrl-C, `kill`, and the terminal going away. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
export type StopSignal = (typeof STOP_SIGNALS)[number]

/** What Interrupts needs of the process; tests pass a stand-in. */
export interface SignalSource {
  on(signal: StopSignal, listener: (signal: StopSignal) => void): unknown
  off(signal: StopSignal, listener: (signal: StopSignal) => void): unknown
  exit(code: number): never
}

/**
 * Signals for as long as an intercept exists. The first one ends it in order (handler, volumes,
 * intercept). Node's default would kill tp on the spot, and a second Ctrl-C during that
 * teardown would do the same halfway through, leaving the handler and volumes for the daemon's
 * lease clean-up to find. So a second one says what is still being done, and only a third quits
 * at once.
 */
export class Interrupts {
  /** The first signal received, once there was one. */
  signal?: StopSignal
  /** What the first signal starts, for the message (e.g. "stopping the handler and ending the intercept"). */
  action = 'ending the intercept'
  private count = 0
  private readonly callbacks = new Set<(signal: StopSignal) => void>()
  private readonly listener = (signal: StopSignal) => this.received(signal)

  constructor(
    private readonly write: (text: string) => void,
    private readonly source: SignalSource = process as unknown as SignalSource,
  ) {
    for (const signal of STOP_SIGNALS) source.on(signal, this.listener)
  }

  /** Runs `callback` on the first signal (at once if it came already); returns a function that cancels it. */
  onInterrupt(callback: (signal: StopSignal) => void): () => void {
    if (this.signal) {
      callback(this.signal)
      return () => {}
    }
    this.callbacks.add(callback)
    return () => this.callbacks.delete(callback)
  }

  /** Stops listening; signals get Node's default handling again. */
  dispose(): void {
    for (const signal of STOP_SIGNALS) this.source.off(signal, this.listener)
    this.callbacks.clear()
  }

  private received(signal: StopSignal): void {
    this.count += 1
    if (signal === 'SIGHUP') {
      // the terminal is gone: writing to it fails, and a failed write must not crash the teardown
      process.stderr.on('error', () => {})
      process.stdout.on('error', () => {})
    }
    if (this.count === 1) {
      this.signal = signal
      this.write(`\n${signal}: ${this.action}…\n`)
      for (const callback of this.callbacks) callback(signal)
      this.callbacks.clear()
    } else if (this.count === 2) {
      this.write(`\n${signal}: still ${this.action}; it takes a few seconds. Press Ctrl-C once more to quit at once and leave the rest to the daemon.\n`)
    } else {
      this.write(`\n${signal}: quitting now. The daemon removes what is left of the intercept when it notices that tp is gone.\n`)
      this.source.exit(130)
    }
  }
}

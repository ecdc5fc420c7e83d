/** Running a command the way a person at a terminal does: under a real pseudo-terminal. */
import {setTimeout as sleep} from 'node:timers/promises'
import {execa, type ResultPromise} from 'execa'
import {repoRoot} from './demo.js'

export interface TerminalRun {
  child: ResultPromise
  /** Everything the terminal showed so far. */
  output: () => string
  /** Types into the terminal (`\x03` is Ctrl-C, `\r` is Enter). */
  type: (keys: string) => void
  /** Resolves once the terminal shows text matching `pattern`; rejects if the command exits first or after `timeoutMs`. */
  waitFor: (pattern: RegExp | string, timeoutMs?: number) => Promise<void>
}

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`

/**
 * Runs `command` under util-linux `script`, whose exit code is the command's (128 + n when a
 * signal killed it). script starts the command through `$SHELL -c`; a shell that stays in between
 * (dash does) would take the Ctrl-C itself and die of it, so the shell is pinned to /bin/sh and
 * replaced by the command with `exec`, as a person's interactive shell hands the terminal over.
 */
export function inTerminal(command: string[], options: {env?: Record<string, string | undefined>; cwd?: string} = {}): TerminalRun {
  const line = `exec ${command.map(quote).join(' ')}`
  const child = execa('script', ['-qec', line, '/dev/null'], {
    env: {...(options.env ?? process.env), SHELL: '/bin/sh'},
    cwd: options.cwd ?? repoRoot,
    reject: false,
    buffer: false,
    stdin: 'pipe',
    all: true,
  })
  let output = ''
  child.all?.on('data', (c: Buffer) => (output += c.toString()))
  const waitFor = async (pattern: RegExp | string, timeoutMs = 90_000) => {
    const deadline = Date.now() + timeoutMs
    const seen = () => (typeof pattern === 'string' ? output.includes(pattern) : pattern.test(output))
    while (!seen()) {
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before showing ${pattern}:\n${output}`)
      if (Date.now() > deadline) throw new Error(`did not show ${pattern} within ${timeoutMs} ms:\n${output}`)
      await sleep(100)
    }
  }
  return {child, output: () => output, type: (keys) => child.stdin?.write(keys), waitFor}
}

/**
 * Three kinds of failure, printed differently by the CLI:
 * - UserError: something the user can fix; carries the next step to take.
 * - BugError: tp (or a plugin) is wrong; asks for a report.
 * - SubprocessError: a command tp ran failed; carries its exit code and the tail of its stderr.
 * Checked structurally (`kind`), never with instanceof: a user-installed plugin has its own sdk copy.
 */
export type TpErrorKind = 'user' | 'bug' | 'subprocess'

export abstract class TpError extends Error {
  abstract readonly kind: TpErrorKind
  /** Exit code the CLI uses for this error. */
  exitCode = 1
}

export class UserError extends TpError {
  readonly kind = 'user' as const
  constructor(
    message: string,
    readonly next?: string,
    options?: {cause?: unknown; exitCode?: number},
  ) {
    super(message, options?.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'UserError'
    if (options?.exitCode !== undefined) this.exitCode = options.exitCode
  }
}

export class BugError extends TpError {
  readonly kind = 'bug' as const
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options?.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'BugError'
    this.exitCode = 70
  }
}

export class SubprocessError extends TpError {
  readonly kind = 'subprocess' as const
  constructor(
    readonly command: string,
    readonly subprocessExitCode: number | undefined,
    readonly stderrTail: string,
    message?: string,
  ) {
    super(message ?? `${command} failed${subprocessExitCode === undefined ? '' : ` with exit code ${subprocessExitCode}`}`)
    this.name = 'SubprocessError'
  }
}

export function isTpError(e: unknown): e is TpError {
  return typeof e === 'object' && e !== null && ['user', 'bug', 'subprocess'].includes((e as {kind?: string}).kind ?? '') && e instanceof Error
}

export function isUserError(e: unknown): e is UserError {
  return isTpError(e) && e.kind === 'user'
}

/** Last `lines` lines of a process's stderr, for error messages. */
export function tail(text: string, lines = 12): string {
  const all = text.trimEnd().split('\n')
  return all.slice(-lines).join('\n')
}

/** Human-readable rendering of any error, as the CLI prints it. */
export function formatError(e: unknown): string {
  if (isTpError(e)) {
    if (e.kind === 'user') {
      const u = e as UserError
      return u.next ? `${u.message}\n  → ${u.next}` : u.message
    }
    if (e.kind === 'subprocess') {
      const s = e as SubprocessError
      const stderr = s.stderrTail
        ? `\n${s.stderrTail
            .split('\n')
            .map((l) => `  | ${l}`)
            .join('\n')}`
        : ''
      return `${s.message}${stderr}`
    }
    return `internal error (a bug in tp or one of its plugins): ${e.message}\n  → please report it with the output of \`tp version\`${e.stack ? `\n${e.stack}` : ''}`
  }
  if (e instanceof Error) return `internal error (a bug in tp or one of its plugins): ${e.message}\n${e.stack ?? ''}`
  return `internal error: ${String(e)}`
}

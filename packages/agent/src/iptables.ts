import {execFile, execFileSync} from 'node:child_process'
import {promisify} from 'node:util'
import {FORWARDING_WAS_OFF, restoreForwarding} from './kernel-path.js'
import {positionAfterTaps, RULE_COMMENT, ruleArgs, TAP_SUFFIX} from './rules.js'

export {RULE_COMMENT, ruleArgs}

const execFileAsync = promisify(execFile)

/**
 * The agent's one rule: TCP arriving from outside the namespace for the service port goes to the
 * agent's redirect port. PREROUTING only, so the agent's own connections to 127.0.0.1:<service>
 * (OUTPUT) still reach the app.
 */
export class RedirectRule {
  private installed = false

  constructor(
    readonly servicePort: number,
    readonly redirectPort: number,
    readonly interceptId: string,
    private readonly iptables = 'iptables',
    /** A wiretap's rule: first of all; an intercept's goes after every wiretap's for its port. */
    private readonly tap = false,
  ) {}

  private args(action: '-I' | '-D', position?: number): string[] {
    return [
      '-w',
      '-t',
      'nat',
      action,
      'PREROUTING',
      ...(position === undefined ? [] : [String(position)]),
      '-p',
      'tcp',
      '--dport',
      String(this.servicePort),
      '-m',
      'comment',
      '--comment',
      `${RULE_COMMENT}:${this.interceptId}${this.tap ? TAP_SUFFIX : ''}`,
      '-j',
      'REDIRECT',
      '--to-ports',
      String(this.redirectPort),
    ]
  }

  get isInstalled(): boolean {
    return this.installed
  }

  async install(): Promise<void> {
    try {
      await execFileAsync(this.iptables, this.args('-I', this.tap ? 1 : await positionAfterTaps(this.servicePort, this.iptables)))
    } catch (error) {
      const e = error as {stderr?: string; message: string}
      throw new Error(`iptables could not install the redirect rule: ${(e.stderr || e.message).trim()}`)
    }
    this.installed = true
  }

  async remove(): Promise<void> {
    if (!this.installed) return
    await execFileAsync(this.iptables, this.args('-D'))
    this.installed = false
  }

  /** For process exit handlers, where nothing asynchronous runs any more. */
  removeSync(): void {
    if (!this.installed) return
    try {
      execFileSync(this.iptables, this.args('-D'), {stdio: 'ignore'})
    } catch {
      // already gone
    }
    this.installed = false
  }
}

/**
 * Removes agents' rules left in this namespace by an agent that could not remove its own (killed
 * with SIGKILL): those of one intercept, or every agent's; the redirect and DNAT rules
 * (PREROUTING) and the masquerade rules (POSTROUTING). When a removed rule says forwarding was off
 * before the agent turned it on, and no other agent's rule says so, forwarding is turned off again.
 * Returns how many rules were removed.
 */
export async function removeLeftoverRules(interceptId?: string, iptables = 'iptables'): Promise<number> {
  const ours = (comment: string) =>
    interceptId ? comment === `${RULE_COMMENT}:${interceptId}` || comment.startsWith(`${RULE_COMMENT}:${interceptId}:`) : comment.startsWith(`${RULE_COMMENT}:`)
  let removed = 0
  let forwardingWasOff = false
  for (const chain of ['PREROUTING', 'POSTROUTING']) {
    const {stdout} = await execFileAsync(iptables, ['-w', '-t', 'nat', '-S', chain])
    for (const line of stdout.split('\n')) {
      const args = ruleArgs(line)
      const at = args.indexOf('--comment')
      const comment = at >= 0 ? args[at + 1] : undefined
      if (args[0] !== '-A' || !comment || !ours(comment)) continue
      await execFileAsync(iptables, ['-w', '-t', 'nat', '-D', ...args.slice(1)])
      if (comment.endsWith(`:${FORWARDING_WAS_OFF}`)) forwardingWasOff = true
      removed++
    }
  }
  if (forwardingWasOff) await restoreForwarding(iptables)
  return removed
}

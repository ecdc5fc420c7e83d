// What every iptables rule of an agent carries, and how to read them back.
import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

/** Every rule an agent installs carries this comment, followed by `:<intercept id>`. */
export const RULE_COMMENT = 'tp-agent'

/** Splits one line of `iptables -S` into arguments (double-quoted words are one argument). */
export function ruleArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]))
}

/**
 * The redirect port of the agent whose rule for `servicePort` comes after the rule that redirects
 * to `ownPort`, in `iptables -t nat -S PREROUTING` output (the kernel tries rules in that order, so
 * that is the agent the traffic would reach without this one). If this agent's rule is gone (it is
 * releasing), or none follows: undefined, the app.
 */
export function nextRedirectPort(rules: string, servicePort: number, ownPort: number): number | undefined {
  const ports: number[] = []
  for (const line of rules.split('\n')) {
    const args = ruleArgs(line)
    const at = (flag: string) => {
      const i = args.indexOf(flag)
      return i >= 0 ? args[i + 1] : undefined
    }
    if (args[0] !== '-A' || at('--dport') !== String(servicePort) || at('-j') !== 'REDIRECT') continue
    if (!at('--comment')?.startsWith(`${RULE_COMMENT}:`)) continue
    const to = Number(at('--to-ports'))
    if (Number.isInteger(to) && to > 0) ports.push(to)
  }
  const own = ports.indexOf(ownPort)
  // no rule of this agent's any more: it is going, and what it still carries goes to the app (another
  // agent might hand it back here while its own look-up is not a second old)
  if (own < 0) return undefined
  return ports[own + 1]
}

/** A wiretap agent's rule comment ends with this: the rule goes first, before every intercept's. */
export const TAP_SUFFIX = ':tap'

/**
 * Where (1-based, for `iptables -I PREROUTING <n>`) an intercept's rule for `servicePort` goes: after
 * every wiretap's rule for that port, so a wiretap started earlier still sees the traffic (and sends
 * it on to this agent). 1 when there is no wiretap.
 */
export function afterTaps(rules: string, servicePort: number): number {
  let position = 1
  let n = 0
  for (const line of rules.split('\n')) {
    const args = ruleArgs(line)
    if (args[0] !== '-A') continue
    n++
    const at = (flag: string) => {
      const i = args.indexOf(flag)
      return i >= 0 ? args[i + 1] : undefined
    }
    const comment = at('--comment')
    if (at('--dport') === String(servicePort) && comment?.startsWith(`${RULE_COMMENT}:`) && comment.endsWith(TAP_SUFFIX)) position = n + 1
  }
  return position
}

/** Where an intercept's rule for `servicePort` goes in PREROUTING: after every wiretap's (`afterTaps`). */
export async function positionAfterTaps(servicePort: number, iptables = 'iptables'): Promise<number> {
  const {stdout} = await promisify(execFile)(iptables, ['-w', '-t', 'nat', '-S', 'PREROUTING'])
  return afterTaps(stdout, servicePort)
}

// What every iptables rule of an agent carries, and how to read them back.

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

// What every iptables rule of an agent carries, and how to read them back.

/** Every rule an agent installs carries this comment, followed by `:<intercept id>`. */
export const RULE_COMMENT = 'tp-agent'

/** Splits one line of `iptables -S` into arguments (double-quoted words are one argument). */
export function ruleArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]))
}

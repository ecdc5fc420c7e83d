import type {Hook} from '@oclif/core'
import {didYouMean} from '../base-command.js'

/**
 * oclif takes `tp quit bi-c` for a command `quit bi-c` when `quit` takes no arguments, and answers
 * "command quit:bi-c not found" with exit 2. A known command followed by words runs that command
 * with them, so it says itself what it takes; an unknown command is named, with the nearest one.
 */
const hook: Hook<'command_not_found'> = async function (options) {
  const words = options.id.split(':')
  for (let n = words.length - 1; n > 0; n--) {
    const id = words.slice(0, n).join(':')
    if (options.config.findCommand(id)) return options.config.runCommand(id, [...words.slice(n), ...(options.argv ?? [])])
  }
  const commands = Object.fromEntries(options.config.commands.filter((c) => !c.hidden).map((c) => [c.id.replaceAll(':', ' '), {}]))
  // oclif joins every word before the first flag into the id (`spec validate ./x`): name the first word that is no command or topic
  const known = (id: string) => Boolean(options.config.findCommand(id)) || options.config.topics.some((t) => t.name === id || t.name.startsWith(`${id}:`))
  let n = 1
  while (n < words.length && known(words.slice(0, n).join(':'))) n++
  const written = words.slice(0, n).join(' ')
  const near = didYouMean(`--${written}`, commands)?.replace('`--', '`tp ')
  process.stderr.write(`tp: there is no command "${written}"\n  → ${near ? `did you mean ${near}? ` : ''}\`tp --help\` lists the commands\n`)
  this.exit(1)
}

export default hook

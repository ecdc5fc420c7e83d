import {type HandlerDescriptor, UserError} from '@tp/sdk'

/**
 * The handler a `tp intercept` command line selects: the one whose flag is set (e.g. --docker-run);
 * without a flag, arguments after -- are a command for the local-process handler; nothing at all
 * holds the intercept. Two selected is an error.
 */
export function chooseHandler(descriptors: HandlerDescriptor[], flags: Record<string, unknown>, handlerArgs: string[]): HandlerDescriptor | undefined {
  const chosen = descriptors.filter((d) => d.selectedBy !== undefined && Boolean(flags[d.selectedBy]))
  if (chosen.length > 1) {
    const names = chosen.map((d) => `--${d.selectedBy}`)
    // e.g. --docker-build implies --docker-run: the user need not (and must not) give both
    const implies = (d: HandlerDescriptor) => (d.selectedBy === undefined ? undefined : d.flags[d.selectedBy]?.implies)
    const implying = chosen.find((d) => chosen.some((other) => other !== d && implies(d) === other.selectedBy))
    throw new UserError(
      `${names.join(' and ')} cannot be used together: each runs its own handler`,
      implying ? `--${implying.selectedBy} already implies --${implies(implying)}: drop --${implies(implying)}` : 'choose one',
    )
  }
  if (chosen.length === 0 && handlerArgs.length > 0) {
    const command = descriptors.find((d) => d.selectedByArgs)
    if (command) return command
    throw new UserError('arguments after -- are for a handler, but no handler was chosen', 'add --docker-run (or another handler flag, see `tp extensions`)')
  }
  return chosen[0]
}

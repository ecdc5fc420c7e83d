import {type HandlerDescriptor, UserError} from '@tp/sdk'

/**
 * The handler a `tp intercept` command line selects: the one whose flag is set (e.g. --docker-run),
 * or none. Two selected is an error; so are arguments after -- without a handler.
 */
export function chooseHandler(descriptors: HandlerDescriptor[], flags: Record<string, unknown>, handlerArgs: string[]): HandlerDescriptor | undefined {
  const chosen = descriptors.filter((d) => Boolean(flags[d.selectedBy]))
  if (chosen.length > 1) {
    const names = chosen.map((d) => `--${d.selectedBy}`)
    // e.g. --docker-build implies --docker-run: the user need not (and must not) give both
    const implying = chosen.find((d) => chosen.some((other) => other !== d && d.flags[d.selectedBy]?.implies === other.selectedBy))
    throw new UserError(
      `${names.join(' and ')} cannot be used together: each runs its own handler`,
      implying ? `--${implying.selectedBy} already implies --${implying.flags[implying.selectedBy].implies}: drop --${implying.flags[implying.selectedBy].implies}` : 'choose one',
    )
  }
  if (chosen.length === 0 && handlerArgs.length > 0) {
    throw new UserError('arguments after -- are for a handler, but no handler was chosen', 'add --docker-run (or another handler flag, see `tp extensions`)')
  }
  return chosen[0]
}

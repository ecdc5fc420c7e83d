/**
 * What bin/run.js starts: oclif's `execute`, from the bundle (dist/bundle/main.js) that holds
 * @oclif/core and tp's own commands, so that start-up reads a few files instead of ~170 modules.
 */
import {flush, handle, run} from '@oclif/core'

/**
 * oclif's `execute`, except that `this.exit(n)` of a command built on another copy of @oclif/core
 * (plugin-plugins' commands and tp's own subclass of them, a user's plugin) exits quietly as it
 * would with the bundle's own: oclif tells an exit from an error with `instanceof`.
 */
export async function execute(options: {dir: string}): Promise<unknown> {
  return run(process.argv.slice(2), options.dir)
    .then(async (result) => {
      flush()
      return result
    })
    .catch(async (error: Error & {code?: string; oclif?: {exit?: number}; skipOclifErrorHandling?: boolean}) => {
      if (error?.code === 'EEXIT' && typeof error.oclif?.exit === 'number') error.skipOclifErrorHandling = true
      return handle(error)
    })
}

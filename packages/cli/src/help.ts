import {type Command, Help} from '@oclif/core'

/**
 * oclif's help, plus the flags that installed handlers add to `tp intercept` (they are not in the
 * manifest: a user-installed handler brings its own).
 */
export default class TpHelp extends Help {
  override async showCommandHelp(command: Command.Loadable): Promise<void> {
    if (command.id !== 'intercept') return super.showCommandHelp(command)
    // imported here: the sdk and the plugins' descriptors are for this page only, not for `tp --help`
    const {loadRegistries} = await import('./extensions.js')
    const registries = await loadRegistries(this.config)
    const flags: Command.Loadable['flags'] = {...command.flags}
    for (const {descriptor} of registries.handlers.list()) {
      for (const [name, spec] of Object.entries(descriptor.flags ?? {})) {
        const description = `${spec.description} [handler ${descriptor.name}]`
        flags[name] =
          spec.type === 'boolean'
            ? {name, type: 'boolean', description, allowNo: false}
            : {name, type: 'option', description, helpValue: spec.helpValue, multiple: Boolean(spec.multiple)}
      }
    }
    return super.showCommandHelp({...command, flags})
  }
}

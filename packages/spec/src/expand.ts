/**
 * `${VAR}` and `${VAR:-default}` in the values of a spec, from the environment of `tp spec run`.
 * `$$` is a literal `$`; a `$` not followed by `{` or `$` stays as it is (so shell scripts keep
 * their `$1`, `$HOME`…). An unset variable without a default is an error; `${VAR:-default}` takes
 * the default when VAR is unset or empty.
 */

export interface Expanded {
  value: string
  /** Problems, each with its offset in the text. */
  errors: Array<{offset: number; message: string; hint: string}>
}

const REFERENCE = /^\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/

export function expandVariables(text: string, env: Record<string, string | undefined>): Expanded {
  let value = ''
  const errors: Expanded['errors'] = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c !== '$') {
      value += c
      continue
    }
    const next = text[i + 1]
    if (next === '$') {
      value += '$'
      i += 1
      continue
    }
    if (next !== '{') {
      value += c
      continue
    }
    const match = REFERENCE.exec(text.slice(i + 1))
    if (!match) {
      errors.push({
        offset: i,
        message: `"${text.slice(i, i + 20)}${text.length > i + 20 ? '…' : ''}" is not a usable variable reference`,
        hint: 'write ${NAME} or ${NAME:-default} (NAME: letters, digits and _), or $${ for a literal ${',
      })
      value += c
      continue
    }
    const [whole, name, fallback] = match
    const set = env[name]
    if (fallback !== undefined) value += set === undefined || set === '' ? fallback : set
    else if (set === undefined) {
      errors.push({offset: i, message: `the variable ${name} is not set`, hint: `set it in the environment of tp, or give a default: \${${name}:-<value>}`})
    } else value += set
    i += whole.length
  }
  return {value, errors}
}

/// <reference path="./types/supports-color.d.ts" />
/**
 * `tp --help` (the root page) as oclif's Help prints it, without oclif: its formatter's `section`,
 * `wrap`, `indent` and `renderList` and RootHelp's first lines, over the topics and commands that
 * the build took from oclif itself (dist/fast-start.json). scripts/bundle.mjs bundles wrap-ansi,
 * string-width, supports-color… here from @oclif/core's own dependencies, so that wrapping and
 * colour are decided by the same code; test/fast-start.test.ts compares the two at several widths.
 */
import {format} from 'node:util'
import ansis from 'ansis'
import indentString from 'indent-string'
import stringWidth from 'string-width'
import {stderr as colorStderr, stdout as colorStdout} from 'supports-color'
import widestLine from 'widest-line'
import wrapAnsi from 'wrap-ansi'

export interface RootHelpText {
  /** the CLI's description (package.json), ejs templates already rendered */
  description: string
  bin: string
  /** the lists oclif's root help renders, as its formatTopics gives them to renderList: [name, first line of its description] */
  topics: [string, string | undefined][]
  /** as its formatCommands gives them: [id, summary] */
  commands: [string, string | undefined][]
}

/** oclif's screen.ts: OCLIF_COLUMNS, else the terminal's width (40 at least), else 80. */
function terminalWidth(): number {
  const given = Number.parseInt(process.env.OCLIF_COLUMNS ?? '', 10)
  if (given) return given
  if (!process.stdout.isTTY) return 80
  const width = process.stdout.getWindowSize()[0]
  return width < 1 ? 80 : Math.max(width, 40)
}

class Formatter {
  constructor(readonly maxWidth: number) {}

  wrap(body: string, spacing = 2): string {
    return wrapAnsi(body, this.maxWidth - spacing, {hard: true})
  }

  indent(body: string, spacing = 2): string {
    return indentString(body, spacing)
  }

  /** oclif's colorize('bold', …): only when both stdout and stderr take colours */
  bold(text: string): string {
    return colorStdout && colorStderr ? ansis.bold(text) : text
  }

  section(header: string, body: string): string {
    return [this.bold(header), this.indent(body)].join('\n')
  }

  renderList(input: [string, string | undefined][], indentation: number): string {
    if (input.length === 0) return ''
    const renderMultiline = () => {
      let output = ''
      for (const [left, right] of input) {
        if (!left && !right) continue
        if (left) output += this.wrap(left.trim(), indentation)
        if (right) {
          output += '\n'
          output += this.indent(this.wrap(right.trim(), indentation + 2), 4)
        }
        output += '\n\n'
      }
      return output.trim()
    }
    const maxLength = widestLine(input.map((i) => i[0]).join('\n'))
    let output = ''
    let cur = ''
    for (const [left, r] of input) {
      if (cur) output += `\n${cur}`
      cur = left || ''
      if (!r) {
        cur = cur.trim()
        continue
      }
      const right = this.wrap(r.trim(), indentation + maxLength + 2)
      const [first, ...lines] = right.split('\n').map((s) => s.trim())
      cur += ' '.repeat(maxLength - stringWidth(cur) + 2)
      cur += first
      if (lines.length === 0) continue
      if (lines.length > 4) return renderMultiline()
      cur += '\n'
      cur += this.indent(lines.join('\n'), maxLength + 2)
    }
    if (cur) output += `\n${cur}`
    return output.trim()
  }
}

/** The root help page, as oclif's Help.showRootHelp writes it (line by line through console.log). */
export function rootHelp(text: RootHelpText, userAgent: string): string {
  const f = new Formatter(terminalWidth())
  const [summary, ...rest] = text.description.split('\n')
  const details = rest.join('\n')
  const root = [
    summary,
    f.section('VERSION', f.wrap(userAgent)),
    f.section('USAGE', f.wrap(`$ ${text.bin} [COMMAND]`)),
    details ? f.section('DESCRIPTION', f.wrap(details)) : '',
  ]
    .filter(Boolean)
    .join('\n\n')
  const lines = [root, '']
  if (text.topics.length > 0) lines.push(f.section('TOPICS', f.renderList(text.topics, 2)), '')
  if (text.commands.length > 0) lines.push(f.section('COMMANDS', f.renderList(text.commands, 2)), '')
  return lines.map((line) => `${format(line)}\n`).join('')
}

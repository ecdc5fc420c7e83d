import {type Document, LineCounter, type Node, type Pair, isMap, isScalar, isSeq} from 'yaml'

/** One problem of a spec file, where it is and what to write instead. */
export interface SpecProblem {
  /** 1-based. */
  line: number
  col: number
  /** Where in the document, e.g. `handlers[0].docker.image`; empty for the whole file. */
  path: string
  message: string
  /** What to write instead. */
  hint?: string
}

export type PathSegment = string | number

/** `handlers[0].docker.image`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = ''
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`
    else text += text === '' ? String(segment) : `.${String(segment)}`
  }
  return text
}

/** Finds nodes of a parsed document by path and turns their offsets into line and column. */
export class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): {line: number; col: number} {
    return this.lines.linePos(offset)
  }

  /**
   * The node at `path` (`key`: the key of the last segment, for "this key is wrong"); when the
   * path goes further than the document, the deepest node that exists.
   */
  find(path: readonly PropertyKey[], options: {key?: boolean} = {}): Node | undefined {
    let node: unknown = this.doc.contents
    let keyNode: unknown
    for (const segment of path) {
      if (isMap(node)) {
        const pair = (node.items as Pair[]).find((p) => (isScalar(p.key) ? p.key.value : p.key) === segment)
        if (!pair) return node
        keyNode = pair.key
        node = pair.value ?? pair.key
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment]
        if (!item) return node
        keyNode = undefined
        node = item
      } else return node as Node | undefined
    }
    return ((options.key && keyNode) || node) as Node | undefined
  }

  /** A problem at the node of `path`. */
  problem(path: readonly PropertyKey[], message: string, hint?: string, options: {key?: boolean} = {}): SpecProblem {
    const node = this.find(path, options)
    const offset = node?.range?.[0] ?? 0
    const {line, col} = this.position(offset)
    return {line, col, path: formatPath(path), message, hint}
  }
}

export function newLineCounter(): LineCounter {
  return new LineCounter()
}

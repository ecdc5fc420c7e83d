import {execFile, execFileSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {open, readFile, writeFile} from 'node:fs/promises'
import {promisify} from 'node:util'
import {CONNTRACK_TABLE, countInFlight, type DnatTarget} from './conntrack.js'
import {positionAfterTaps, RULE_COMMENT, ruleArgs} from './rules.js'

const execFileAsync = promisify(execFile)

/** IPv4 forwarding of the current network namespace (the agent's is the workload's). */
export const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward'

/**
 * Suffix of the masquerade rule's comment when forwarding was off before an agent turned it on:
 * whoever removes the last such rule (the agent, its guard, the cleanup) turns it off again.
 */
export const FORWARDING_WAS_OFF = 'ip_forward=0'

export interface KernelPathOptions {
  iptables?: string
  ipForward?: string
  conntrack?: string
}

/**
 * The kernel path to a handler that listens on an address the workload's namespace can reach: new
 * connections to the service port are rewritten to the handler (DNAT, before the agent's REDIRECT
 * rule) and their source to the workload's address (MASQUERADE), so replies come back the same way
 * and the agent's process never carries them. Forwarding is turned on in this namespace if it is off.
 * Connections keep the path they started on (conntrack): removing the DNAT rule sends new ones to the
 * agent again while those in flight to the handler finish; `inFlight()` counts them.
 */
export class KernelPath {
  private dnat?: string[]
  private masquerade?: string[]
  /** The masquerade rule says forwarding was off: removing it may turn forwarding off again. */
  private marked = false
  private target?: DnatTarget
  private readonly iptables: string
  private readonly ipForward: string
  private readonly conntrack: string

  constructor(
    readonly servicePort: number,
    readonly interceptId: string,
    options: KernelPathOptions = {},
  ) {
    this.iptables = options.iptables ?? 'iptables'
    this.ipForward = options.ipForward ?? IP_FORWARD
    this.conntrack = options.conntrack ?? CONNTRACK_TABLE
  }

  /** New connections go to the kernel path now. */
  get isOn(): boolean {
    return this.dnat !== undefined
  }

  private get comment(): string {
    return `${RULE_COMMENT}:${this.interceptId}`
  }

  private async run(args: string[]): Promise<void> {
    await execFileAsync(this.iptables, ['-w', '-t', 'nat', ...args])
  }

  /** Turns the kernel path on towards host:port (an IPv4 address); throws saying why it cannot. */
  async enable(host: string, port: number): Promise<void> {
    if (this.target && (this.target.host !== host || this.target.port !== port)) await this.restore()
    // without the table, a hand-back could not wait for what is in flight
    await open(this.conntrack).then(
      (file) => file.close(),
      (error: NodeJS.ErrnoException) => {
        throw new Error(`cannot read ${this.conntrack} (${error.code ?? error.message}) to follow the connections in flight`)
      },
    )
    this.target = {servicePort: this.servicePort, host, port}
    if (!this.masquerade) {
      const marked = await this.forwardingTurnedOn()
      const comment = marked ? `${this.comment}:${FORWARDING_WAS_OFF}` : this.comment
      const args = ['POSTROUTING', '-p', 'tcp', '-d', host, '--dport', String(port)]
      args.push('-m', 'conntrack', '--ctstate', 'DNAT', '--ctorigdstport', String(this.servicePort))
      args.push('-m', 'comment', '--comment', comment, '-j', 'MASQUERADE')
      try {
        await this.run(['-A', ...args])
      } catch (error) {
        if (marked) await restoreForwarding(this.iptables, this.ipForward)
        throw new Error(`iptables could not install the masquerade rule: ${stderrOf(error)}`)
      }
      this.masquerade = args
      this.marked = marked
    }
    if (!this.dnat) {
      const args = ['PREROUTING', '-p', 'tcp', '--dport', String(this.servicePort), '-m', 'comment', '--comment', this.comment]
      args.push('-j', 'DNAT', '--to-destination', `${host}:${port}`)
      try {
        // before the agent's REDIRECT rule for the same port, after any wiretap's
        await this.run(['-I', args[0], String(await positionAfterTaps(this.servicePort, this.iptables)), ...args.slice(1)])
      } catch (error) {
        throw new Error(`iptables could not install the DNAT rule: ${stderrOf(error)}`)
      }
      this.dnat = args
    }
  }

  /**
   * Turns forwarding on if it is off; true when the masquerade rule must record that it was off
   * (this agent turned it on, or another agent did and is still there).
   */
  private async forwardingTurnedOn(): Promise<boolean> {
    const on = (await readFile(this.ipForward, 'utf8').catch(() => '0')).trim() === '1'
    if (on) return (await forwardingMarkers(this.iptables)) > 0
    await writeFile(this.ipForward, '1').catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot turn forwarding on in this network namespace (${this.ipForward}: ${error.code ?? error.message})`)
    })
    return true
  }

  /** New connections go to the agent again; those in flight keep the kernel path. */
  async disable(): Promise<void> {
    if (!this.dnat) return
    await this.run(['-D', ...this.dnat]).catch(() => undefined)
    this.dnat = undefined
  }

  /** Connections rewritten to the handler that have not ended (0 when the path was never on). */
  async inFlight(): Promise<number> {
    if (!this.target) return 0
    const table = await readFile(this.conntrack, 'utf8').catch(() => '')
    return countInFlight(table, this.target)
  }

  /** Removes both rules and puts forwarding back as it was. */
  async restore(): Promise<void> {
    await this.disable()
    if (this.masquerade) {
      await this.run(['-D', ...this.masquerade]).catch(() => undefined)
      this.masquerade = undefined
      if (this.marked) await restoreForwarding(this.iptables, this.ipForward).catch(() => undefined)
      this.marked = false
    }
    this.target = undefined
  }

  /** For process exit handlers, where nothing asynchronous runs any more. */
  restoreSync(): void {
    for (const args of [this.dnat, this.masquerade]) {
      if (!args) continue
      try {
        execFileSync(this.iptables, ['-w', '-t', 'nat', '-D', ...args], {stdio: 'ignore'})
      } catch {
        // already gone
      }
    }
    const marked = this.masquerade !== undefined && this.marked
    this.dnat = this.masquerade = this.target = undefined
    this.marked = false
    if (marked) restoreForwardingSync(this.iptables, this.ipForward)
  }
}

function stderrOf(error: unknown): string {
  const e = error as {stderr?: string; message: string}
  return (e.stderr || e.message).trim()
}

function isForwardingMarker(line: string): boolean {
  const args = ruleArgs(line)
  const comment = args[args.indexOf('--comment') + 1] ?? ''
  return args.includes('--comment') && comment.startsWith(`${RULE_COMMENT}:`) && comment.endsWith(`:${FORWARDING_WAS_OFF}`)
}

/** How many agents' rules in this namespace say forwarding was off before them. */
async function forwardingMarkers(iptables: string): Promise<number> {
  const {stdout} = await execFileAsync(iptables, ['-w', '-t', 'nat', '-S', 'POSTROUTING'])
  return stdout.split('\n').filter(isForwardingMarker).length
}

/** Turns forwarding off again once no agent's rule says it was off before it (the last one out). */
export async function restoreForwarding(iptables = 'iptables', ipForward = IP_FORWARD): Promise<void> {
  if ((await forwardingMarkers(iptables).catch(() => 1)) > 0) return
  await writeFile(ipForward, '0')
}

function restoreForwardingSync(iptables: string, ipForward: string): void {
  try {
    const listing = execFileSync(iptables, ['-w', '-t', 'nat', '-S', 'POSTROUTING'], {encoding: 'utf8'})
    if (listing.split('\n').some(isForwardingMarker)) return
    if (readFileSync(ipForward, 'utf8').trim() !== '0') writeFileSync(ipForward, '0')
  } catch {
    // nothing more can be done on the way out
  }
}

import {execFile, execFileSync} from 'node:child_process'
import {promisify} from 'node:util'

const execFileAsync = promisify(execFile)

/**
 * The agent's one rule: TCP arriving from outside the namespace for the service port goes to the
 * agent's redirect port. PREROUTING only, so the agent's own connections to 127.0.0.1:<service>
 * (OUTPUT) still reach the app.
 */
export class RedirectRule {
  private installed = false

  constructor(
    readonly servicePort: number,
    readonly redirectPort: number,
    private readonly iptables = 'iptables',
  ) {}

  private args(action: '-I' | '-D'): string[] {
    return ['-w', '-t', 'nat', action, 'PREROUTING', '-p', 'tcp', '--dport', String(this.servicePort), '-j', 'REDIRECT', '--to-ports', String(this.redirectPort)]
  }

  get isInstalled(): boolean {
    return this.installed
  }

  async install(): Promise<void> {
    try {
      await execFileAsync(this.iptables, this.args('-I'))
    } catch (error) {
      const e = error as {stderr?: string; message: string}
      throw new Error(`iptables could not install the redirect rule: ${(e.stderr || e.message).trim()}`)
    }
    this.installed = true
  }

  async remove(): Promise<void> {
    if (!this.installed) return
    await execFileAsync(this.iptables, this.args('-D'))
    this.installed = false
  }

  /** For process exit handlers, where nothing asynchronous runs any more. */
  removeSync(): void {
    if (!this.installed) return
    try {
      execFileSync(this.iptables, this.args('-D'), {stdio: 'ignore'})
    } catch {
      // already gone
    }
    this.installed = false
  }
}

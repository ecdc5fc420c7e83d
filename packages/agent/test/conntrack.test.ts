import {describe, expect, it} from 'vitest'
import {countInFlight} from '../src/conntrack.js'

// Lines as /proc/net/nf_conntrack prints them: client 172.18.0.4, workload 172.18.0.2 (service
// port 8080), handler 172.18.0.3:9090.
const line = (state: string, orig: string, reply: string, proto = 'tcp      6') =>
  `ipv4     2 ${proto} 431999 ${state} ${orig} ${reply} [ASSURED] mark=0 zone=0 use=2`
const rewritten = (state: string, sport = 51000) =>
  line(state, `src=172.18.0.4 dst=172.18.0.2 sport=${sport} dport=8080`, `src=172.18.0.3 dst=172.18.0.2 sport=9090 dport=${sport}`)
const target = {servicePort: 8080, host: '172.18.0.3', port: 9090}

describe('countInFlight', () => {
  it('counts the connections rewritten to the handler that have not ended', () => {
    const table = [
      rewritten('ESTABLISHED', 1),
      rewritten('FIN_WAIT', 2),
      rewritten('SYN_SENT', 3).replace('[ASSURED]', '[UNREPLIED]'),
      rewritten('TIME_WAIT', 4),
      rewritten('CLOSE', 5),
    ].join('\n')
    expect(countInFlight(table, target)).toBe(3)
  })

  it('leaves out connections to the app, the agent’s own connections to the handler, other targets and UDP', () => {
    const table = [
      // to the app (redirected to the agent or not rewritten at all)
      line('ESTABLISHED', 'src=172.18.0.4 dst=172.18.0.2 sport=6 dport=8080', 'src=172.18.0.2 dst=172.18.0.4 sport=8080 dport=6'),
      // the agent's own connection to a handler that listens on the service port number
      line('ESTABLISHED', 'src=172.18.0.2 dst=172.18.0.3 sport=7 dport=8080', 'src=172.18.0.3 dst=172.18.0.2 sport=8080 dport=7'),
      // another handler port
      line('ESTABLISHED', 'src=172.18.0.4 dst=172.18.0.2 sport=8 dport=8080', 'src=172.18.0.3 dst=172.18.0.2 sport=9091 dport=8'),
      line('', 'src=172.18.0.4 dst=172.18.0.2 sport=9 dport=8080', 'src=172.18.0.3 dst=172.18.0.2 sport=9090 dport=9', 'udp      17'),
      '',
    ].join('\n')
    expect(countInFlight(table, target)).toBe(0)
    expect(countInFlight(`${table}\n${rewritten('ESTABLISHED')}`, target)).toBe(1)
  })
})

/**
 * The swarm fixture (test/helpers/swarm-machine.ts): three network-namespace engines in one swarm,
 * a registry every node pulls from, a stack deployed across the workers whose services reach each
 * other by name over the overlay — and nothing left on this host after stop().
 */
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import Dockerode from 'dockerode'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'
import {type SwarmMachine, startSwarm, sweepStaleSwarms} from './helpers/swarm-machine.js'

/** TP_SWARM_NAME (as for test/swarm.test.ts) lets runs side by side differ. */
const NAME = process.env.TP_SWARM_NAME ? `${process.env.TP_SWARM_NAME}-fx` : 'tpsw-fx'

const COMPOSE = (image: string) => `
version: "3.8"
services:
  web:
    image: ${image}
    command: ["sh", "-c", "echo web on $$NODE > /www/index.html && exec httpd -f -p 80 -h /www"]
    environment:
      NODE: "{{.Node.Hostname}}"
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      placement:
        max_replicas_per_node: 1
        constraints: [node.role == worker]
  inventory:
    image: ${image}
    command: ["sh", "-c", "echo inventory > /www/index.html && exec httpd -f -p 8080 -h /www"]
    deploy:
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == worker]
networks:
  default:
    attachable: true
`

async function hostTraces(swarm: {name: string; registry: string}): Promise<string[]> {
  const lines = async (argv: string[]) => (await execa(argv[0], argv.slice(1))).stdout.split('\n')
  const all = [...(await lines(['ip', 'netns', 'list'])), ...(await lines(['iptables-save'])), ...(await lines(['ip', 'route', 'show']))]
  const found = all.filter((line) => line.includes(swarm.name) || line.includes('10.79.0.0/16'))
  if (existsSync(`/etc/docker/certs.d/${swarm.registry}`)) found.push(`certs.d/${swarm.registry}`)
  return found
}

describe('a swarm of network-namespace engines', () => {
  let swarm: SwarmMachine
  let image: string

  beforeAll(async () => {
    await sweepStaleSwarms(NAME)
    swarm = await startSwarm(NAME)
    const manager = new Dockerode({socketPath: swarm.manager.socket})
    const busybox = await ensureImportedImage(manager, {
      repo: 'tpsw-busybox',
      tag: '1',
      spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
      changes: ['ENV PATH=/bin'],
      what: 'test fixture',
    })
    image = await swarm.push(busybox.ref, 'tpsw-busybox:1')
  }, 240_000)

  afterAll(async () => {
    await swarm?.stop()
  }, 120_000)

  it('has a manager and two ready workers', async () => {
    const listed = (await swarm.manager.docker(['node', 'ls', '--format', '{{.ID}} {{.Status}} {{.ManagerStatus}}'])).stdout
    expect(listed.trim().split('\n')).toHaveLength(3)
    expect(swarm.nodes.map((n) => n.role)).toEqual(['manager', 'worker', 'worker'])
  })

  it('runs a stack on the workers from an image the registry serves, reached by name across nodes', async () => {
    await swarm.deployStack('shop', COMPOSE(image))
    await swarm.waitForStack('shop', 90_000)
    const tasks = (await swarm.manager.docker(['service', 'ps', 'shop_web', '--filter', 'desired-state=running', '--format', '{{.Node}}'])).stdout
    // one on each worker: they pulled the image from the registry (it exists nowhere else there)
    expect(new Set(tasks.trim().split('\n'))).toEqual(new Set([`${NAME}-w1`, `${NAME}-w2`]))
    const worker = swarm.nodes[1].machine
    const [container] = (await worker.docker(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=shop_web'])).stdout.trim().split('\n')
    const fetch = async (url: string) => (await worker.docker(['exec', container, 'sh', '-c', `timeout 5 wget -qO- ${url}`], {reject: false})).stdout.trim()
    expect(await fetch('http://inventory:8080/')).toBe('inventory')
    // tasks.web names both replicas (one on each node): each answers, across the overlay
    const lookup = (await worker.docker(['exec', container, 'nslookup', 'tasks.web'], {reject: false})).stdout
    const addresses = [...lookup.matchAll(/Address: (10\.79\.\d+\.\d+)/g)].map((m) => m[1])
    expect(addresses).toHaveLength(2)
    const answers = await Promise.all(addresses.map((a) => fetch(`http://${a}/`)))
    expect(answers.sort()).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
  }, 180_000)

  it('leaves nothing on this host when stopped', async () => {
    const state = JSON.parse(await readFile(`/run/tp-swarm/${NAME}.json`, 'utf8')) as {rules: unknown[]}
    expect(state.rules.length).toBe(6)
    await swarm.stop()
    expect(await hostTraces(swarm)).toEqual([])
  }, 120_000)
})

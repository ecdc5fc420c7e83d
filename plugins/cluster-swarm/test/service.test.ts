import {describe, expect, it} from 'vitest'
import {imageWithoutDigest, type ServiceInfo, servicePorts, shortName, type TaskInfo, toWorkload} from '../src/service.js'

const NS = {name: 'shop', stack: 'shop', networkId: 'net1', networkName: 'shop_default'}
const NODES = new Map([
  ['n1', 'worker-1'],
  ['n2', 'worker-2'],
])

function service(overrides: Partial<ServiceInfo['Spec']> = {}): ServiceInfo {
  return {
    ID: 's1',
    Spec: {
      Name: 'shop_web',
      Labels: {'com.docker.stack.namespace': 'shop'},
      TaskTemplate: {
        ContainerSpec: {Image: 'reg:5000/web:1@sha256:abc', Env: ['GREETING=hi', 'MODE=a=b'], User: '1000', Mounts: [{Target: '/data', ReadOnly: true}]},
        Networks: [{Target: 'net1', Aliases: ['web', 'www']}],
      },
      EndpointSpec: {Mode: 'dnsrr', Ports: [{Protocol: 'tcp', TargetPort: 8080, PublishedPort: 18080}]},
      ...overrides,
    },
  }
}

function task(id: string, slot: number, node: string, state = 'running', desired = 'running'): TaskInfo {
  return {
    ID: id,
    ServiceID: 's1',
    Slot: slot,
    NodeID: node,
    DesiredState: desired,
    Status: {State: state, Timestamp: '2026-12-05T19:00:00Z', ContainerStatus: {ContainerID: `c-${id}`}},
    NetworksAttachments: [
      {Network: {ID: 'ingress'}, Addresses: ['10.0.0.9/24']},
      {Network: {ID: 'net1'}, Addresses: [`10.79.1.${slot + 10}/24`]},
    ],
  }
}

describe('swarm services as workloads', () => {
  it('names a service without its stack prefix, and only its own stack’s', () => {
    expect(shortName('shop_web', 'shop')).toBe('web')
    expect(shortName('shop_web', undefined)).toBe('shop_web')
    expect(shortName('other_web', 'shop')).toBe('other_web')
  })

  it('takes the digest off an image a stack pinned', () => {
    expect(imageWithoutDigest('reg:5000/web:1@sha256:abc')).toBe('reg:5000/web:1')
    expect(imageWithoutDigest('busybox')).toBe('busybox')
  })

  it('has the ports of its endpoint spec and of its image, once each, named by its label', () => {
    const s = service({Labels: {'tp.port-names': 'http:80'}})
    expect(servicePorts(s, {exposed: {'80/tcp': {}, '8080/tcp': {}, '53/udp': {}}})).toEqual([
      {port: 53, protocol: 'udp'},
      {port: 80, name: 'http', protocol: 'tcp'},
      {port: 8080, protocol: 'tcp'},
    ])
  })

  it('is its running tasks on their nodes, with their addresses on the namespace’s network, and the env of image then service', () => {
    const tasks = [
      task('t2', 2, 'n2'),
      task('t1', 1, 'n1'),
      task('t0', 1, 'n1', 'shutdown', 'shutdown'),
      task('t3', 3, 'n2', 'starting'),
      {...task('x', 1, 'n1'), ServiceID: 'other'},
    ]
    const w = toWorkload(service(), tasks, NS, NODES, {env: ['PATH=/bin', 'GREETING=from image'], exposed: {'80/tcp': {}}})
    expect(w.name).toBe('web')
    expect(w.aliases).toEqual(['shop_web', 'www'])
    expect(w.replicaNames).toEqual(['tasks.shop_web', 'tasks.web', 'tasks.www'])
    expect(w.environment).toEqual({PATH: '/bin', GREETING: 'hi', MODE: 'a=b'})
    expect(w.ports.map((p) => p.port)).toEqual([80, 8080])
    expect(w.mounts).toEqual([{path: '/data', readOnly: true}])
    expect(w.user).toEqual({uid: 1000, gid: 1000})
    expect(w.replicas).toEqual([
      {id: 't1', name: 'shop_web.1', address: '10.79.1.11', startedAt: '2026-12-05T19:00:00Z', node: 'worker-1'},
      {id: 't2', name: 'shop_web.2', address: '10.79.1.12', startedAt: '2026-12-05T19:00:00Z', node: 'worker-2'},
    ])
  })

  it('names a global service’s tasks by node', () => {
    const global = {...task('g1', 0, 'n1'), Slot: undefined}
    const w = toWorkload(service({Mode: {Global: {}}}), [global], NS, NODES, undefined)
    expect(w.replicas.map((r) => r.name)).toEqual(['shop_web.n1'])
  })
})

describe('a namespace whose network is not attachable', () => {
  it('is refused naming the network, with what to do for a stack and for a network of its own', async () => {
    const {notAttachable} = await import('../src/driver.js')
    const stack = notAttachable({name: 'shop', stack: 'shop', networkId: 'n1', networkName: 'shop_default'}, 'shop')
    expect(stack.message).toBe("the overlay network shop_default of namespace shop is not attachable, so tp's relay cannot join it")
    expect(String(stack.next)).toContain('`networks: {default: {attachable: true}}`')
    expect(String(stack.next)).toContain('`docker stack rm shop`')
    const plain = notAttachable({name: 'backend', networkId: 'n2', networkName: 'backend'}, 'backend')
    expect(String(plain.next)).toContain('docker network create --driver overlay --attachable backend')
  })
})

describe('a service’s secrets and configs', () => {
  it('are files at their paths in a task (secrets under /run/secrets, configs under / unless absolute), served as read-only directories', async () => {
    const {taskFiles, taskFileMounts, unservedTaskFiles} = await import('../src/service.js')
    const files = taskFiles({
      Secrets: [
        {SecretID: 's1', SecretName: 'shop_token', File: {Name: 'api-token'}},
        {SecretID: 's2', SecretName: 'tls', File: {Name: '/etc/tls/key.pem'}},
      ],
      Configs: [
        {ConfigID: 'c1', ConfigName: 'settings', File: {Name: '/etc/web/settings.txt'}},
        {ConfigID: 'c2', ConfigName: 'top', File: {Name: 'top.conf'}},
      ],
    })
    expect(files).toEqual([
      {id: 's1', target: '/run/secrets/api-token'},
      {id: 's2', target: '/etc/tls/key.pem'},
      {id: 'c1', target: '/etc/web/settings.txt'},
      {id: 'c2', target: '/top.conf'},
    ])
    expect(taskFileMounts(files, [{path: '/etc/tls', readOnly: false}])).toEqual([
      {path: '/etc/web', readOnly: true},
      {path: '/run/secrets', readOnly: true},
    ])
    // a config right under / is not served, and tp says what to do
    expect(unservedTaskFiles(files)).toEqual([{path: '/top.conf', why: expect.stringContaining('give it a target in a directory')}])
  })
})

import {execa} from 'execa'
import {describe, expect, it} from 'vitest'
import {allOptions, booleanOption, CONTAINER_NAME_PATTERN, lastOption, scanDockerRunArgs} from '@tp/sdk'

/**
 * The `docker run` argument scanner: where the image is, which options are docker's (only those
 * before the image), value-taking vs boolean options. `IMG` is an image name no engine has, so the
 * same rows can be replayed against the real docker client (see the last test).
 */
const IMG = 'tpt-scan-absent:1'

interface Row {
  title: string
  args: string[]
  imageIndex: number
  containerArgs?: string[]
  /** [name, value] in order; `index` is checked separately where it matters. */
  options: Array<[string, string]>
  /** Substrings, one per expected error; none when omitted. */
  errors?: string[]
}

const rows: Row[] = [
  {title: 'image only', args: [IMG], imageIndex: 0, options: []},
  {title: 'nothing at all', args: [], imageIndex: -1, options: []},
  {
    title: '-it cluster of booleans',
    args: ['-it', IMG],
    imageIndex: 1,
    options: [
      ['interactive', 'true'],
      ['tty', 'true'],
    ],
  },
  {
    title: '-ti in the other order',
    args: ['-ti', IMG, 'sh'],
    imageIndex: 1,
    containerArgs: ['sh'],
    options: [
      ['tty', 'true'],
      ['interactive', 'true'],
    ],
  },
  {title: '-e=X', args: ['-e=X', IMG], imageIndex: 1, options: [['env', 'X']]},
  {title: '-e=A=B keeps the second =', args: ['-e=A=B', IMG], imageIndex: 1, options: [['env', 'A=B']]},
  {title: '-eX glued value', args: ['-eX', IMG], imageIndex: 1, options: [['env', 'X']]},
  {title: '-eA=B glued value with =', args: ['-eA=B', IMG], imageIndex: 1, options: [['env', 'A=B']]},
  {title: '-e X separate value', args: ['-e', 'X=1', IMG], imageIndex: 2, options: [['env', 'X=1']]},
  {title: '--env X', args: ['--env', 'X', IMG], imageIndex: 2, options: [['env', 'X']]},
  {title: '--env=X', args: ['--env=X', IMG], imageIndex: 1, options: [['env', 'X']]},
  {title: '--env-file is not --env', args: ['--env-file', '/dev/null', IMG], imageIndex: 2, options: [['env-file', '/dev/null']]},
  {title: '-v a:b', args: ['-v', 'a:b', IMG], imageIndex: 2, options: [['volume', 'a:b']]},
  {title: '--volume=a:b:ro', args: ['--volume=/a:/b:ro', IMG], imageIndex: 1, options: [['volume', '/a:/b:ro']]},
  {title: '--rm', args: ['--rm', IMG], imageIndex: 1, options: [['rm', 'true']]},
  {title: '--rm=false', args: ['--rm=false', IMG], imageIndex: 1, options: [['rm', 'false']]},
  {title: '--rm=true', args: ['--rm=true', IMG], imageIndex: 1, options: [['rm', 'true']]},
  {title: '--rm does not take the image as its value', args: ['--rm', IMG, 'true'], imageIndex: 1, containerArgs: ['true'], options: [['rm', 'true']]},
  {title: '--rm=maybe is not a boolean', args: ['--rm=maybe', IMG], imageIndex: 1, options: [['rm', 'maybe']], errors: ['--rm takes true or false']},
  {title: '--name x', args: ['--name', 'x', IMG], imageIndex: 2, options: [['name', 'x']]},
  {title: '--name=x', args: ['--name=x', IMG], imageIndex: 1, options: [['name', 'x']]},
  {title: '--name= (empty: the consumer must reject it)', args: ['--name=', IMG], imageIndex: 1, options: [['name', '']]},
  {title: '--name -x takes -x as the value', args: ['--name', '-x', IMG], imageIndex: 2, options: [['name', '-x']]},
  {title: '-d', args: ['-d', IMG], imageIndex: 1, options: [['detach', 'true']]},
  {
    title: '-itd',
    args: ['-itd', IMG],
    imageIndex: 1,
    options: [
      ['interactive', 'true'],
      ['tty', 'true'],
      ['detach', 'true'],
    ],
  },
  {title: '--detach', args: ['--detach', IMG], imageIndex: 1, options: [['detach', 'true']]},
  {title: '-d=false', args: ['-d=false', IMG], imageIndex: 1, options: [['detach', 'false']]},
  {
    title: '-it=false sets only -t',
    args: ['-it=false', IMG],
    imageIndex: 1,
    options: [
      ['interactive', 'true'],
      ['tty', 'false'],
    ],
  },
  {
    title: 'options after the image belong to the container',
    args: [IMG, '--name', 'x', '-d', '--rm'],
    imageIndex: 0,
    containerArgs: ['--name', 'x', '-d', '--rm'],
    options: [],
  },
  {
    title: 'docker options, image, then a container command with its own flags',
    args: ['--rm', '-e', 'A=1', IMG, 'sh', '-c', 'echo -d'],
    imageIndex: 3,
    containerArgs: ['sh', '-c', 'echo -d'],
    options: [
      ['rm', 'true'],
      ['env', 'A=1'],
    ],
  },
  {title: '-- before the image', args: ['--rm', '--', IMG, '-d'], imageIndex: 2, containerArgs: ['-d'], options: [['rm', 'true']]},
  {title: '-- makes an image that looks like an option', args: ['--', '-weird', 'x'], imageIndex: 1, containerArgs: ['x'], options: []},
  {
    title: '-ie X: cluster ending in a value letter takes the next argument',
    args: ['-ie', 'X', IMG],
    imageIndex: 2,
    options: [
      ['interactive', 'true'],
      ['env', 'X'],
    ],
  },
  {
    title: '-ip: cluster ending in -p',
    args: ['-ip', '8080:80', IMG],
    imageIndex: 2,
    options: [
      ['interactive', 'true'],
      ['publish', '8080:80'],
    ],
  },
  {title: '-et: value letter first takes the rest as value', args: ['-et', IMG], imageIndex: 1, options: [['env', 't']]},
  {title: '-p 8080:80', args: ['-p', '8080:80', IMG], imageIndex: 2, options: [['publish', '8080:80']]},
  {
    title: '--publish=8080:80 twice',
    args: ['--publish=8080:80', '-p', '9090:90', IMG],
    imageIndex: 3,
    options: [
      ['publish', '8080:80'],
      ['publish', '9090:90'],
    ],
  },
  {title: '-P publish-all is boolean', args: ['-P', IMG], imageIndex: 1, options: [['publish-all', 'true']]},
  {title: '--network=container:x', args: ['--network=container:x', IMG], imageIndex: 1, options: [['network', 'container:x']]},
  {title: '--network x', args: ['--network', 'tp-demo', IMG], imageIndex: 2, options: [['network', 'tp-demo']]},
  {title: '--net is the old spelling of --network', args: ['--net', 'tpt-none', IMG], imageIndex: 2, options: [['network', 'tpt-none']]},
  {title: '--net=host', args: ['--net=host', IMG], imageIndex: 1, options: [['network', 'host']]},
  {title: '--dns 1.1.1.1', args: ['--dns', '1.1.1.1', IMG], imageIndex: 2, options: [['dns', '1.1.1.1']]},
  {
    title: '-w /app -u 1000 -h host',
    args: ['-w', '/app', '-u', '1000', '-h', 'host', IMG],
    imageIndex: 6,
    options: [
      ['workdir', '/app'],
      ['user', '1000'],
      ['hostname', 'host'],
    ],
  },
  {
    title: '-l k=v -m 64m -a stdout -c 512',
    args: ['-l', 'k=v', '-m', '64m', '-a', 'stdout', '-c', '512', IMG],
    imageIndex: 8,
    options: [
      ['label', 'k=v'],
      ['memory', '64m'],
      ['attach', 'stdout'],
      ['cpu-shares', '512'],
    ],
  },
  {
    title: 'long booleans',
    args: ['--init', '--privileged', '--read-only', '--sig-proxy=false', '--no-healthcheck', IMG],
    imageIndex: 5,
    options: [
      ['init', 'true'],
      ['privileged', 'true'],
      ['read-only', 'true'],
      ['sig-proxy', 'false'],
      ['no-healthcheck', 'true'],
    ],
  },
  {title: '--cap-add takes a value', args: ['--cap-add', 'NET_ADMIN', IMG], imageIndex: 2, options: [['cap-add', 'NET_ADMIN']]},
  {title: '--mount takes a value', args: ['--mount', 'type=tmpfs,dst=/t', IMG], imageIndex: 2, options: [['mount', 'type=tmpfs,dst=/t']]},
  {
    title: 'missing image after options',
    args: ['--rm', '-e', 'A=1'],
    imageIndex: -1,
    options: [
      ['rm', 'true'],
      ['env', 'A=1'],
    ],
  },
  {title: 'missing image after --', args: ['--rm', '--'], imageIndex: -1, options: [['rm', 'true']]},
  {title: 'missing value at the end (long)', args: ['--name'], imageIndex: -1, options: [['name', '']], errors: ['--name needs a value']},
  {
    title: 'missing value at the end (short)',
    args: ['--rm', '-e'],
    imageIndex: -1,
    options: [
      ['rm', 'true'],
      ['env', ''],
    ],
    errors: ['-e needs a value'],
  },
  {title: 'value option swallows what looks like the image', args: ['--name', IMG], imageIndex: -1, options: [['name', IMG]]},
  {title: 'unknown short letter', args: ['-Z', IMG], imageIndex: 1, options: [], errors: ['unknown docker run option -Z']},
  {title: 'unknown letter inside a cluster', args: ['-iZ', IMG], imageIndex: 1, options: [['interactive', 'true']], errors: ['-Z in -iZ']},
  {title: 'a lone - is not an option', args: ['-', 'x'], imageIndex: 0, containerArgs: ['x'], options: []},
  {
    title: 'unknown long option is named, not given the image as its value',
    args: ['--bogus-opt', IMG],
    imageIndex: 1,
    options: [],
    errors: ['unknown docker run option --bogus-opt'],
  },
  {title: 'unknown long option with =', args: ['--bogus=1', IMG], imageIndex: 1, options: [], errors: ['unknown docker run option --bogus']},
  {title: 'hidden long option that takes a value', args: ['--dns-opt', 'ndots:1', IMG], imageIndex: 2, options: [['dns-opt', 'ndots:1']]},
]

describe('scanDockerRunArgs', () => {
  it('has a table of at least 35 cases', () => {
    expect(rows.length).toBeGreaterThanOrEqual(35)
  })

  it.each(rows)('$title: $args', (row) => {
    const scan = scanDockerRunArgs(row.args)
    expect(scan.imageIndex).toBe(row.imageIndex)
    expect(scan.image).toBe(row.imageIndex === -1 ? undefined : row.args[row.imageIndex])
    expect(scan.containerArgs).toEqual(row.containerArgs ?? [])
    expect(scan.optionArgs).toEqual(row.args.slice(0, row.imageIndex === -1 ? row.args.length : row.imageIndex))
    expect(scan.options.map((o) => [o.name, o.value])).toEqual(row.options)
    const expectedErrors = row.errors ?? []
    expect(scan.errors).toHaveLength(expectedErrors.length)
    for (const [k, text] of expectedErrors.entries()) expect(scan.errors[k]).toContain(text)
  })

  it('records where each option starts', () => {
    const scan = scanDockerRunArgs(['-it', '--name', 'x', '-e=A', '--rm', IMG])
    expect(scan.options.map((o) => [o.name, o.index])).toEqual([
      ['interactive', 0],
      ['tty', 0],
      ['name', 1],
      ['env', 3],
      ['rm', 4],
    ])
  })

  it('finds --name/--rm/-d/--network/-p only before the image', () => {
    const scan = scanDockerRunArgs(['-p', '80:80', IMG, '--name', 'inner', '--rm=false', '-d', '--network', 'host'])
    expect(lastOption(scan, 'name')).toBeUndefined()
    expect(booleanOption(scan, 'rm')).toBeUndefined()
    expect(booleanOption(scan, 'detach')).toBeUndefined()
    expect(lastOption(scan, 'network')).toBeUndefined()
    expect(allOptions(scan, 'publish').map((o) => o.value)).toEqual(['80:80'])
  })

  it('reads booleans the way docker does, and takes the last value of a repeated option', () => {
    expect(booleanOption(scanDockerRunArgs(['--rm=false', IMG]), 'rm')).toBe(false)
    expect(booleanOption(scanDockerRunArgs(['--rm=0', IMG]), 'rm')).toBe(false)
    expect(booleanOption(scanDockerRunArgs(['--rm=True', IMG]), 'rm')).toBe(true)
    expect(booleanOption(scanDockerRunArgs(['--rm', '--rm=false', IMG]), 'rm')).toBe(false)
    expect(booleanOption(scanDockerRunArgs(['-d=false', IMG]), 'detach')).toBe(false)
    expect(lastOption(scanDockerRunArgs(['--name', 'a', '--name=b', IMG]), 'name')?.value).toBe('b')
    expect(allOptions(scanDockerRunArgs(['-e', 'A=1', '--env=B=2', '-eC=3', IMG]), 'env').map((o) => o.value)).toEqual(['A=1', 'B=2', 'C=3'])
  })

  it('knows docker container names', () => {
    expect(CONTAINER_NAME_PATTERN.test('intercept-frontend-80')).toBe(true)
    expect(CONTAINER_NAME_PATTERN.test('')).toBe(false)
    expect(CONTAINER_NAME_PATTERN.test('-x')).toBe(false)
    expect(CONTAINER_NAME_PATTERN.test('a/b')).toBe(false)
  })
})

/**
 * The real docker client is the oracle: run each row with `--pull=never` against an image that does
 * not exist. Docker's "No such image: X" names the argument it took as the image; a parse error
 * means docker refuses the arguments too. Rows with -t are skipped (no TTY here), as are rows the
 * scanner accepts but docker's daemon would check first (none so far).
 */
describe('scanDockerRunArgs agrees with the docker client', () => {
  const dockerAvailable = execa('docker', ['version', '--format', '{{.Server.Version}}'], {reject: false}).then((r) => r.exitCode === 0)
  const replayable = rows.filter((row) => !scanDockerRunArgs(row.args).options.some((o) => o.name === 'tty' && o.value === 'true'))

  it.each(replayable)('$title', async (row) => {
    if (!(await dockerAvailable)) throw new Error('these tests need a docker engine')
    const scan = scanDockerRunArgs(row.args)
    const result = await execa('docker', ['run', '--pull=never', ...row.args], {reject: false, stdin: 'ignore', timeout: 20_000})
    const said = `${result.stderr}\n${result.stdout}`
    expect(result.exitCode).not.toBe(0)
    if (scan.errors.length === 0 && scan.image === IMG) {
      expect(said).toContain(`No such image: ${IMG}`)
    } else if (scan.errors.length === 0 && scan.image !== undefined) {
      // an image name docker cannot use (e.g. `-weird`) or one that is not ours: docker must not find IMG
      expect(said).not.toContain(`No such image: ${IMG}`)
    } else {
      // the scanner found a problem or no image: docker must refuse before looking for an image
      expect(said).not.toMatch(/No such image/)
    }
  })
})

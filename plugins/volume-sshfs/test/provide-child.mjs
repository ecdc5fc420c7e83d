// A tp process in miniature for the crash test: provides the volumes of the session given as JSON
// in argv[2], prints what it got as one JSON line, then waits to be killed (kill -9).
import {SshfsProvider} from '@tp/plugin-volume-sshfs'

const {cacheDir, tmpDir, session} = JSON.parse(process.argv[2])
const log = {info() {}, warn() {}, debug() {}}
const provided = await new SshfsProvider({tpVersion: '0.0.0-test', cacheDir, log}, {tmpDir}).provide(session, {form: 'directory'})
process.stdout.write(`${JSON.stringify({root: provided.root, pid: process.pid})}\n`)
setInterval(() => {}, 60_000)

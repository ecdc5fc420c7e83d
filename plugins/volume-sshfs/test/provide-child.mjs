// A tp process in miniature for the crash tests: provides the volumes of the session given as JSON
// in argv[2] (into `root` if given), prints what it got as one JSON line, then either waits to be
// killed (kill -9) or, with `afterProvide: "exit"`, exits at once without calling release() (an uncaught
// error, process.exit). A refusal is printed as {"error": {kind, message, next}}.
import {SshfsProvider} from '@tp/plugin-volume-sshfs'

const {cacheDir, tmpDir, session, root, afterProvide} = JSON.parse(process.argv[2])
const log = {info() {}, warn() {}, debug() {}}
let provided
try {
  provided = await new SshfsProvider({tpVersion: '0.0.0-test', cacheDir, log}, {tmpDir}).provide(session, {form: 'directory', root})
} catch (error) {
  process.stdout.write(`${JSON.stringify({error: {kind: error.kind, message: error.message, next: error.next}})}\n`)
  process.exit(1)
}
process.stdout.write(`${JSON.stringify({root: provided.root, pid: process.pid})}\n`)
if (afterProvide === 'exit') process.exit(3)
setInterval(() => {}, 60_000)

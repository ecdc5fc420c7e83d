// What the agent does for its workload's volumes, in miniature: every TCP connection on the SFTP
// port ($SFTP_PORT, default 2222) gets its own `sftp-server -e` with the socket as stdin/stdout.
// Used by the telemount tests and bench/telemount.bench.mjs as a stand-in workload.
const net = require('node:net')
const {spawn} = require('node:child_process')
net.createServer((socket) => {
  socket.setNoDelay(true)
  const server = spawn('/usr/lib/openssh/sftp-server', ['-e'], {stdio: ['pipe', 'pipe', 'inherit']})
  socket.pipe(server.stdin)
  server.stdout.pipe(socket)
  const end = () => server.kill()
  socket.on('error', end)
  socket.on('close', end)
  server.on('exit', () => socket.destroy())
  server.stdin.on('error', () => {})
}).listen(Number(process.env.SFTP_PORT || 2222), '0.0.0.0')

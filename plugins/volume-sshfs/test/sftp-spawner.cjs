// What the agent does for its workload's volumes, in miniature: every TCP connection on the SFTP
// port ($SFTP_PORT, default 2222) gets its own `sftp-server -e` with the socket as stdin/stdout.
// A copy of plugins/volume-telemount/test/sftp-spawner.cjs (plugins do not share test files):
// the stand-in for the agent's SFTP export in the sshfs provider's tests.
const net = require('node:net')
const {spawn} = require('node:child_process')
net
  .createServer({pauseOnConnect: true}, (socket) => {
    // as the agent does: the connection itself is sftp-server's stdin and stdout, node keeps no copy
    socket.setNoDelay(true)
    const server = spawn('/usr/lib/openssh/sftp-server', ['-e'], {stdio: [socket, socket, 'inherit']})
    socket.destroy()
    server.on('error', () => {})
  })
  .listen(Number(process.env.SFTP_PORT || 2222), process.env.SFTP_HOST || '0.0.0.0')

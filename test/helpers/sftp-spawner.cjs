// What the agent does for its workload's volumes, in miniature: every TCP connection on the SFTP
// port ($SFTP_PORT, default 2222) gets its own `sftp-server -e` with the socket as stdin/stdout.
// The stand-in for the agent's SFTP export, for the telemount and sshfs tests and the telemount
// bench (in a container as a stand-in workload, or on this machine).
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

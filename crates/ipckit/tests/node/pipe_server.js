// A Node.js `net` echo server for ipckit's tests: listens on argv[2], writes
// "listening" to the file argv[3] once it does, echoes every byte of one client,
// and exits when that client goes away.
'use strict';
const fs = require('fs');
const net = require('net');
const [addr, ready] = process.argv.slice(2);
const server = net.createServer((sock) => {
  let echoed = 0;
  sock.on('data', (d) => { echoed += d.length; sock.write(d); });
  const done = () => { fs.writeFileSync(ready, 'echoed ' + echoed); server.close(); };
  sock.on('end', done);
  sock.on('close', done);
  sock.on('error', () => {});
});
server.listen(addr, () => fs.writeFileSync(ready, 'listening'));

// A Node.js `net` client for ipckit's tests: connects to argv[2], sends argv[4]
// bytes of a known pattern, expects them back byte for byte, and writes "ok N" or
// an error to the file argv[3] (Node's stdout is not usable under Wine).
'use strict';
const fs = require('fs');
const net = require('net');
const [addr, out, lenText] = process.argv.slice(2);
const len = Number(lenText);
const data = Buffer.alloc(len);
for (let i = 0; i < len; i++) data[i] = (i * 7 + 3) & 0xff;
const chunks = [];
let got = 0;
const fail = (msg) => { fs.writeFileSync(out, 'error ' + msg); process.exit(1); };
const sock = net.connect(addr, () => sock.write(data));
sock.on('data', (d) => {
  chunks.push(d);
  got += d.length;
  if (got >= len) {
    const back = Buffer.concat(chunks);
    if (back.length !== len || !back.equals(data)) fail('echo differs');
    fs.writeFileSync(out, 'ok ' + len);
    sock.end();
    sock.destroy();
  }
});
sock.on('error', (e) => fail(e.message));

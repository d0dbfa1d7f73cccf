// Starts a Rust child with a descriptor 3 that is not a Node channel, to see
// it refused. Usage: node spawn_probe.js MODE RUST_EXE ARGS...
// MODE file: descriptor 3 is a file, NODE_CHANNEL_FD=3.
// MODE beyond: descriptor 3 is a plain pipe, NODE_CHANNEL_FD=5 (past the table).
// The child reports through IPCKIT_TEST_REPORT; this exits with its exit code.
const { spawn } = require('child_process');
const fs = require('fs');

const [mode, exe, ...args] = process.argv.slice(2);
const third = mode === 'file' ? fs.openSync(__filename, 'r') : 'pipe';
const env = { ...process.env, NODE_CHANNEL_FD: mode === 'file' ? '3' : '5' };
const child = spawn(exe, args, { env, stdio: ['ignore', 'ignore', 'ignore', third] });
child.on('exit', (code) => {
  process.exitCode = code === null ? 1 : code;
});

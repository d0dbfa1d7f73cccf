// A Node parent that forks a Rust child with child_process.fork and checks that
// every message comes back. Usage: node fork_rust.js RUST_EXE ARGS...
// Prints one line: "ok N" or "FAIL why"; exits 0 only on success. With
// IPCKIT_RESULT_FILE set (Node under Wine cannot write to a piped stdout) the
// line goes to that file instead, and the child's stderr is ignored.
const { fork } = require('child_process');
const fs = require('fs');
const assert = require('assert');

const [exe, ...args] = process.argv.slice(2);
const messages = [
  { hello: 'rust' },
  'a string with a\nnewline and "quotes"',
  [1, 2.5, null, true, { nested: ['ünïcödé', '🦀'] }],
  0,
  { big: 'x'.repeat(200000) },
];
const child = fork(args[0], args.slice(1), {
  execPath: exe,
  execArgv: [],
  serialization: 'json',
  stdio: ['ignore', 'ignore', process.env.IPCKIT_RESULT_FILE ? 'ignore' : 'inherit', 'ipc'],
});
const got = [];
const timer = setTimeout(() => finish('timed out with ' + got.length + ' replies'), 30000);
function report(line) {
  if (process.env.IPCKIT_RESULT_FILE) fs.writeFileSync(process.env.IPCKIT_RESULT_FILE, line + '\n');
  else console.log(line);
}
function finish(err) {
  clearTimeout(timer);
  if (err) {
    report('FAIL ' + err);
    child.kill();
    process.exitCode = 1;
  } else {
    report('ok ' + got.length);
  }
}
child.on('message', (msg) => {
  got.push(msg);
  if (got.length === messages.length) {
    try {
      assert.deepStrictEqual(got, messages);
    } catch (e) {
      return finish('replies differ: ' + e.message.slice(0, 300));
    }
    child.disconnect();
  }
});
child.on('exit', (code, signal) => {
  if (got.length !== messages.length) return finish('child exited early: ' + code + ' ' + signal);
  if (code !== 0) return finish('child exit code ' + code + ' ' + signal);
  finish(null);
});
for (const m of messages) child.send(m);

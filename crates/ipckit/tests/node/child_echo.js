// A Node child forked with an IPC channel: echoes every message back as
// { echo: msg }, says { ready: true } first, and exits when the parent
// disconnects (an unmodified process.send / process.on('message') child).
process.on('message', (msg) => {
  process.send({ echo: msg });
});
process.on('disconnect', () => {
  process.exitCode = 0;
});
process.send({ ready: true, pid: process.pid });

// A Node child that answers asynchronously, as a worker does: each message
// { job: N } is answered { done: N } after DELAY ms (argv[2], default 200),
// or, for { big: BYTES }, with { big: "xxxx..." } of that many characters.
// It exits when the parent closes the channel ('disconnect'). A reply sent
// after the parent closed the channel would fail with ERR_IPC_CHANNEL_CLOSED.
const delay = Number(process.argv[2] || 200);
process.on('message', (msg) => {
  setTimeout(() => {
    if (msg && typeof msg.big === 'number') {
      process.send({ big: 'x'.repeat(msg.big) });
    } else {
      process.send({ done: msg.job });
    }
  }, delay);
});
process.on('disconnect', () => {
  process.exitCode = 0;
});

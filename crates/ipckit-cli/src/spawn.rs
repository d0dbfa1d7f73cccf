//! `ipckit spawn -- CMD ARGS...`: run a child with a channel and bridge it to
//! stdin/stdout, one message per line.

use std::ffi::OsString;
use std::io;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, ChildChannel, Serialization};

use crate::message::{each_stdin_line, print_message};

/// `ipckit spawn [--serialization S] -- CMD ARGS...`.
pub(crate) fn run(
    serialization: Serialization,
    linger: Duration,
    cmd: &[OsString],
    verbose: bool,
) -> Result<()> {
    let Some((program, args)) = cmd.split_first() else {
        bail!("spawn needs a command to run");
    };
    let mut command = Command::new(program);
    // Our stdin and stdout carry the messages; the child's own stdout goes to
    // our stderr, so what it prints cannot be taken for a message.
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let (mut child, channel) = ChannelOptions::new()
        .serialization(serialization)
        .spawn(&mut command)?;
    if verbose {
        eprintln!("started {} with a {serialization} channel", channel.peer());
    }
    let chatter = match child.stdout.take() {
        Some(mut out) => Some(
            thread::Builder::new()
                .name("child stdout".into())
                .spawn(move || io::copy(&mut out, &mut io::stderr()))
                .context("start the thread for the child's stdout")?,
        ),
        None => None,
    };
    let sender = channel.try_clone()?;
    let peer = channel.peer().to_owned();
    // Set when stdin has ended: from then on the channel is closed once the
    // child has been quiet for `linger` (or when it closes it, or exits).
    let untold = Arc::new(AtomicBool::new(false));
    let untold_here = Arc::clone(&untold);
    // Detached: it may be blocked reading stdin when the child is done, and then
    // the process simply exits around it. A failure is passed back, to fail the
    // command once the child is done.
    let (failed, stdin_failure) = mpsc::channel();
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            stdin_to_channel(&sender, &untold, |err| {
                let _ = failed.send(err);
            });
        })
        .context("start the stdin thread")?;
    let Printed { printed, lost } = channel_to_stdout(channel, linger, &untold_here)?;
    let status = child.wait().with_context(|| format!("wait for {peer}"))?;
    // The child is done: a stdin thread that failed has said so by now (it
    // reports before it ends the channel, and the child exits after that).
    if let Ok(err) = stdin_failure.try_recv() {
        return Err(err.context(format!(
            "pass stdin to {peer} (which then exited: {status})"
        )));
    }
    // All the child printed is on stderr before we report or exit (its stdout
    // ends when it and any process it passed the pipe on to have exited).
    if let Some(chatter) = chatter {
        let _ = chatter.join();
    }
    if verbose {
        eprintln!("the channel to {peer} ended after {printed} messages; it exited: {status}");
    }
    if !status.success() {
        bail!("{peer} failed: {status}");
    }
    if lost > 0 {
        bail!(
            "{lost} of the messages from {peer} could not be printed (cut short or not \
             JSON: each is reported above); {printed} were"
        );
    }
    Ok(())
}

/// Sends each line of stdin as one message; a line that is not JSON on a JSON
/// channel is reported on stderr and skipped. At the end of stdin, or when
/// reading or sending fails, `untold` is set: the channel stays open for the
/// child's replies, and the receiving side closes it once the child has been
/// quiet for --linger. (A half-close would be the end of the channel for a
/// Node child, whose late replies then fail with ERR_IPC_CHANNEL_CLOSED.) A
/// failure goes to `failed` before `untold` is set, so it is there when the
/// child exits.
fn stdin_to_channel(
    channel: &ChildChannel,
    untold: &AtomicBool,
    mut failed: impl FnMut(anyhow::Error),
) {
    let mut number = 0u64;
    let sent = each_stdin_line(|line| {
        number += 1;
        match channel.send(line) {
            Ok(()) => Ok(ControlFlow::Continue(())),
            Err(e) if e.kind() == ErrorKind::Protocol => {
                eprintln!("ipckit: line {number} of stdin not sent: {e:#}");
                Ok(ControlFlow::Continue(()))
            }
            // The child is gone: nothing more to send; the receiver sees the end.
            Err(e) if e.kind() == ErrorKind::Disconnected => Ok(ControlFlow::Break(())),
            Err(e) => Err(e.into()),
        }
    });
    if let Err(err) = sent {
        failed(err);
    }
    untold.store(true, Ordering::SeqCst);
}

/// What the receiving side did: messages printed, and messages lost (a line
/// that is not JSON, a message cut short by the child's end).
struct Printed {
    printed: u64,
    lost: u64,
}

/// Prints each message and a `\n` until the child closes the channel; a line
/// from the child that is not JSON, or a message cut short, is reported on
/// stderr and counted as lost. Once `untold` is set (stdin ended), the channel
/// is closed when the child has sent nothing for `linger`: that is how the
/// child learns of the end.
fn channel_to_stdout(
    mut channel: ChildChannel,
    linger: Duration,
    untold: &AtomicBool,
) -> Result<Printed> {
    let mut stdout = io::stdout().lock();
    let mut msg = Vec::new();
    let (mut printed, mut lost) = (0u64, 0u64);
    channel.set_read_timeout(Some(linger))?;
    // Since when the child has been quiet, once stdin's end is known. The end
    // is first seen at a read timeout, so the channel closes one to two
    // lingers after the child went quiet (never sooner than one).
    let mut quiet_since: Option<std::time::Instant> = None;
    loop {
        match channel.recv_into(&mut msg) {
            Err(e) if e.is_timeout() => {
                if !untold.load(Ordering::SeqCst) {
                    continue;
                }
                match quiet_since {
                    None => quiet_since = Some(std::time::Instant::now()),
                    Some(t) if t.elapsed() >= linger => {
                        // Dropping the last handle closes the channel; the
                        // stdin thread, which held the other, has ended.
                        drop(channel);
                        return Ok(Printed { printed, lost });
                    }
                    Some(_) => {}
                }
            }
            Ok(true) => {
                print_message(&mut stdout, &msg)?;
                printed += 1;
                quiet_since = quiet_since.map(|_| std::time::Instant::now());
            }
            Ok(false) => return Ok(Printed { printed, lost }),
            Err(e) if e.kind() == ErrorKind::Protocol => {
                eprintln!("ipckit: {e:#}");
                lost += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

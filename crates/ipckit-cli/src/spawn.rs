//! `ipckit spawn -- CMD ARGS...`: run a child with a channel and bridge it to
//! stdin/stdout, one message per line.

use std::ffi::OsString;
use std::io;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, bail};
use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, ChildChannel, Serialization};

use crate::message::{each_stdin_line, print_message};

/// `ipckit spawn [--serialization S] -- CMD ARGS...`.
pub(crate) fn run(serialization: Serialization, cmd: &[OsString], verbose: bool) -> Result<()> {
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
    // Detached: it may be blocked reading stdin when the child is done, and then
    // the process simply exits around it. A failure is passed back, to fail the
    // command once the child is done.
    let (failed, stdin_failure) = mpsc::channel();
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            stdin_to_channel(&sender, |err| {
                let _ = failed.send(err);
            });
        })
        .context("start the stdin thread")?;
    let printed = channel_to_stdout(&channel)?;
    let status = child
        .wait()
        .with_context(|| format!("wait for {}", channel.peer()))?;
    // The child is done: a stdin thread that failed has said so by now (it
    // reports before it ends the channel, and the child exits after that).
    if let Ok(err) = stdin_failure.try_recv() {
        return Err(err.context(format!(
            "pass stdin to {} (which then exited: {status})",
            channel.peer()
        )));
    }
    // All the child printed is on stderr before we report or exit (its stdout
    // ends when it and any process it passed the pipe on to have exited).
    if let Some(chatter) = chatter {
        let _ = chatter.join();
    }
    if verbose {
        eprintln!(
            "{} closed the channel after {printed} messages and exited: {status}",
            channel.peer()
        );
    }
    if !status.success() {
        bail!("{} failed: {status}", channel.peer());
    }
    Ok(())
}

/// Sends each line of stdin as one message; a line that is not JSON on a JSON
/// channel is reported on stderr and skipped. At the end of stdin, or when
/// reading or sending fails, the child is told that no more messages come
/// (where the channel can be half-closed). A failure goes to `failed` before
/// the child is told, so it is there when the child exits.
fn stdin_to_channel(channel: &ChildChannel, mut failed: impl FnMut(anyhow::Error)) {
    let mut number = 0u64;
    let sent = each_stdin_line(|line| {
        number += 1;
        match channel.send(line) {
            Ok(()) => Ok(ControlFlow::Continue(())),
            Err(e) if e.kind() == ErrorKind::Protocol => {
                eprintln!("ipckit: line {number} of stdin not sent: {e}");
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
    match channel.shutdown_send() {
        Err(e) if e.kind() != ErrorKind::Unsupported && e.kind() != ErrorKind::Disconnected => {
            failed(e.into());
        }
        _ => {}
    }
}

/// Prints each message and a `\n` until the child closes the channel; a line
/// from the child that is not JSON is reported on stderr and skipped. Returns
/// how many were printed.
fn channel_to_stdout(channel: &ChildChannel) -> Result<u64> {
    let mut stdout = io::stdout().lock();
    let mut msg = Vec::new();
    let mut printed = 0u64;
    loop {
        match channel.recv_into(&mut msg) {
            Ok(true) => {
                print_message(&mut stdout, &msg)?;
                printed += 1;
            }
            Ok(false) => return Ok(printed),
            Err(e) if e.kind() == ErrorKind::Protocol => eprintln!("ipckit: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

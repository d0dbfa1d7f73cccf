//! `send` and `recv`: one-way messages to a mailslot or to every member of a
//! broadcast group, and the receiver that prints them, a line of stdout per
//! message.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{Result, bail};
use ipckit::{
    Address, ConnectOptions, ErrorKind, ListenerOptions, MailslotReceiver, MailslotSender,
};

use crate::message::{each_stdin_line, print_message};
use crate::one_line;

/// Where `send` sends to and where `recv` receives from.
#[derive(Debug)]
pub(crate) enum Target {
    /// One mailslot: `mailslot:NAME`, and on Unix `unix:/path` or `@NAME`.
    Addr(Address),
    /// Every member of a broadcast group.
    Group(String),
}

/// `ipckit send ADDR [MSG]` and `ipckit send --broadcast GROUP [MSG]`: sends
/// `msg`, or without it each line of stdin, as one message.
pub(crate) fn send(
    opts: &ConnectOptions,
    to: &Target,
    msg: Option<&[u8]>,
    verbose: bool,
) -> Result<()> {
    // Connect before reading stdin: nobody receiving is an error at once.
    let mut sink = match to {
        Target::Addr(addr) => Sink::One(opts.connect_mailslot(addr)?),
        Target::Group(group) => Sink::Group(group, 0),
    };
    let sent = match msg {
        Some(msg) => {
            sink.send(msg, verbose)?;
            1
        }
        None => {
            let mut sent = 0u64;
            each_stdin_line(|msg| {
                sink.send(msg, verbose)?;
                sent += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            sent
        }
    };
    if verbose {
        if let Sink::One(sender) = &sink {
            eprintln!(
                "sent {} to {}",
                counted(sent, "message"),
                sender.peer_addr()
            );
        }
    }
    Ok(())
}

/// Where `send`'s messages go.
enum Sink<'a> {
    One(MailslotSender),
    /// A group, and how many messages were broadcast to it so far.
    Group(&'a str, u64),
}

impl Sink<'_> {
    fn send(&mut self, msg: &[u8], verbose: bool) -> Result<()> {
        match self {
            Sink::One(sender) => sender.send(msg)?,
            Sink::Group(group, sent) => {
                let reached = MailslotSender::broadcast(group, msg)?;
                *sent += 1;
                if verbose {
                    let full = if reached.full > 0 {
                        format!(
                            ", {} skipped (queue full)",
                            counted(reached.full as u64, "member")
                        )
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "message {sent} to group {group}: delivered to {}, {} removed{full}",
                        counted(reached.delivered as u64, "member"),
                        counted(reached.dead as u64, "dead member"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// "1 member", "2 members".
fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `ipckit recv (ADDR | --broadcast GROUP) [--count N] [--timeout DUR]
/// [--max-size BYTES]`.
#[derive(Debug)]
pub(crate) struct Recv {
    pub(crate) from: Target,
    /// Stop after this many messages.
    pub(crate) count: Option<u64>,
    /// Stop when no message came within this long of the start or of the
    /// previous message.
    pub(crate) timeout: Option<Duration>,
    /// The largest message accepted; the library's default when `None`.
    pub(crate) max_size: Option<usize>,
}

/// Creates the receiver (or joins the group) and prints each message, bytes
/// unchanged, followed by `\n`, until `count` messages were printed or, with a
/// timeout, none came in time: the normal end without `count`, an error with it.
pub(crate) fn recv(args: &Recv, verbose: bool) -> Result<()> {
    let mut opts = ListenerOptions::new();
    if let Some(max) = args.max_size {
        opts.max_message_size(max);
    }
    let inbox = match &args.from {
        Target::Addr(addr) => {
            let inbox = opts.bind_mailslot(addr)?;
            crate::cleanup::socket_of(addr);
            inbox
        }
        Target::Group(group) => {
            let inbox = opts.join_mailslot_group(group)?;
            crate::cleanup::group_member(group);
            inbox
        }
    };
    if verbose {
        // The receiver exists: senders may start. Scripts and tests wait for this.
        match &args.from {
            Target::Addr(_) => eprintln!("receiving on {}", inbox.local_addr()),
            Target::Group(group) => eprintln!("receiving broadcasts to group {group}"),
        }
    }
    print_messages(&inbox, args)
}

fn print_messages(inbox: &MailslotReceiver, args: &Recv) -> Result<()> {
    let mut stdout = io::stdout().lock();
    let mut msg = Vec::new();
    let mut printed = 0u64;
    while args.count.is_none_or(|wanted| printed < wanted) {
        match inbox.recv_into(&mut msg, args.timeout) {
            Ok(()) => {}
            Err(e) if e.is_timeout() => {
                let (Some(wanted), Some(timeout)) = (args.count, args.timeout) else {
                    // Quiet for --timeout and no --count: done.
                    return Ok(());
                };
                let from = match &args.from {
                    Target::Addr(_) => inbox.local_addr().to_string(),
                    Target::Group(group) => format!("broadcast group {group}"),
                };
                bail!("no message on {from} within {timeout:?} (received {printed} of {wanted})");
            }
            // Unix: a message over the limit is dropped whole, and the next one
            // can be received. Warn and go on; it does not count.
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                eprintln!("ipckit: {} (dropped; see --max-size)", one_line(&e.into()));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        print_message(&mut stdout, &msg)?;
        printed += 1;
    }
    Ok(())
}

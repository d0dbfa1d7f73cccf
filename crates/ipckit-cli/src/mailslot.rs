//! `send` and `recv`: one-way messages to a mailslot or to every member of a
//! broadcast group, and the receiver that prints them, a line of stdout per
//! message.

use ipckit::registry::Kind;
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
///
/// A broadcast that skipped a member (its queue was full) is reported on
/// stderr at the end, and is an error unless `best_effort`.
pub(crate) fn send(
    opts: &ConnectOptions,
    to: &Target,
    msg: Option<&[u8]>,
    best_effort: bool,
    verbose: bool,
) -> Result<()> {
    // Connect before reading stdin: nobody receiving is an error at once.
    let mut sink = match to {
        Target::Addr(addr) => Sink::One(opts.connect_mailslot(addr)?),
        Target::Group(group) => Sink::Group(group, Tally::default()),
    };
    let sent = match msg {
        Some(msg) => {
            sink.send(msg, verbose)?;
            1
        }
        None => {
            let mut sent = 0u64;
            let lines = each_stdin_line(|msg| {
                sink.send(msg, verbose)?;
                sent += 1;
                Ok(ControlFlow::Continue(()))
            });
            if let (Err(_), Sink::Group(group, tally)) = (&lines, &sink) {
                // What was lost before the failure is worth knowing too.
                if tally.skipped > 0 {
                    eprintln!("ipckit: {}", tally.summary(group));
                }
            }
            lines?;
            sent
        }
    };
    match &sink {
        Sink::One(sender) => {
            if verbose {
                eprintln!(
                    "sent {} to {}",
                    counted(sent, "message"),
                    sender.peer_addr()
                );
            }
        }
        Sink::Group(group, tally) if tally.skipped > 0 => {
            if !best_effort {
                bail!(
                    "{}; the skipped messages are lost for those members \
                     (--best-effort: exit 0 all the same)",
                    tally.summary(group)
                );
            }
            eprintln!("ipckit: {}", tally.summary(group));
        }
        Sink::Group(group, tally) => {
            if verbose {
                eprintln!("{}", tally.summary(group));
            }
        }
    }
    Ok(())
}

/// Where `send`'s messages go.
enum Sink<'a> {
    One(MailslotSender),
    /// A group, and what happened to the messages broadcast to it so far.
    Group(&'a str, Tally),
}

/// The sum of a `send --broadcast`'s deliveries.
#[derive(Default)]
struct Tally {
    messages: u64,
    delivered: u64,
    skipped: u64,
    dead: u64,
    /// How many messages each skipped member missed, by member name.
    missed: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, reached: ipckit::mailslot::Broadcast) {
        self.messages += 1;
        self.delivered += reached.delivered as u64;
        self.skipped += reached.full as u64;
        self.dead += reached.dead as u64;
        for member in reached.full_members {
            *self.missed.entry(member).or_default() += 1;
        }
    }

    /// "sent 10000 messages to group G: 7269 deliveries, 2731 deliveries
    /// skipped to 1 member whose queue was full (member 123-0 missed 2731), 0
    /// dead members removed".
    fn summary(&self, group: &str) -> String {
        let mut line = format!(
            "sent {} to group {group}: {}",
            counted(self.messages, "message"),
            counted(self.delivered, "delivery"),
        );
        if self.skipped > 0 {
            const SHOWN: usize = 5;
            let members: Vec<String> = self
                .missed
                .iter()
                .take(SHOWN)
                .map(|(member, n)| format!("member {member} missed {n}"))
                .collect();
            let more = self.missed.len().saturating_sub(SHOWN);
            let more = if more > 0 {
                format!(", {more} more")
            } else {
                String::new()
            };
            line.push_str(&format!(
                ", {} skipped to {} whose queue was full ({}{more})",
                counted(self.skipped, "delivery"),
                counted(self.missed.len() as u64, "member"),
                members.join(", "),
            ));
        }
        line.push_str(&format!(", {} removed", counted(self.dead, "dead member")));
        line
    }
}

impl Sink<'_> {
    fn send(&mut self, msg: &[u8], verbose: bool) -> Result<()> {
        match self {
            Sink::One(sender) => sender.send(msg)?,
            Sink::Group(group, tally) => {
                let reached = MailslotSender::broadcast(group, msg)?;
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
                        "message {} to group {group}: delivered to {}, {} removed{full}",
                        tally.messages + 1,
                        counted(reached.delivered as u64, "member"),
                        counted(reached.dead as u64, "dead member"),
                    );
                }
                tally.add(reached);
            }
        }
        Ok(())
    }
}

/// "1 member", "2 members".
fn counted(n: u64, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
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
            let pending = crate::cleanup::pending();
            let inbox = opts.bind_mailslot(addr)?;
            pending.socket_of(addr);
            crate::services::registered(inbox.local_addr(), Kind::Mailslot, verbose)?;
            inbox
        }
        Target::Group(group) => {
            let pending = crate::cleanup::pending();
            let inbox = opts.join_mailslot_group(group)?;
            pending.group_member(group);
            inbox
        }
    };
    if verbose {
        // The receiver exists: senders may start. Scripts and tests wait for this.
        match &args.from {
            Target::Addr(_) => crate::report_ready("receiving", inbox.local_addr()),
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

//! The demo's transports that are not byte streams: a shared-memory channel
//! (round trips and a bulk echo, in the stream table's terms) and a mailslot
//! (one way: the child sends, this process receives and checks every message).
//! Both use the child half `__demo-peer` with a `shm:` or `mailslot:` address.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipckit::shm::{ShmChannel, ShmListener};
use ipckit::{Address, MailslotReceiver, MailslotSender};

use super::{
    CHUNK, Checksum, IO_LIMIT, Row, Settings, Transport, fill_pattern, first_difference,
    spawn_peer, wait_child, wait_peer,
};

/// The shared-memory channel at `transport.addr`: this process accepts and
/// echoes every message; the child times round trips, then echoes the bulk
/// bytes in messages of up to 64 KiB and checks them.
pub(super) fn run_shm(
    exe: &std::path::Path,
    transport: &Transport,
    settings: Settings,
    expected: u64,
) -> Row {
    let addr: Address = match transport.addr.parse() {
        Ok(addr) => addr,
        Err(err) => return failed(transport, err.into()),
    };
    let pending = crate::cleanup::pending();
    let mut listener = match ShmListener::bind(&addr) {
        Ok(listener) => listener,
        Err(err) => return failed(transport, err.into()),
    };
    pending.shm_channel(&addr);
    let mut pid = None;
    let outcome = (|| {
        let child = spawn_peer(exe, &addr, settings)?;
        pid = Some(child.id());
        let served = serve_shm(&mut listener);
        let figures = wait_peer(child)?;
        super::check_work(settings, expected, served.context("server")?, &figures)?;
        Ok(figures)
    })();
    drop(listener);
    let outcome = outcome.and_then(|figures| {
        // Nothing left behind: the region's name is gone once the peer came.
        let Address::Shm(name) = &addr else {
            return Ok(figures);
        };
        match ipckit::shm::SharedMemory::open(name) {
            Ok(_) => {
                let _ = ipckit::shm::SharedMemory::remove(name);
                Err(anyhow!("the channel left its region {addr} behind"))
            }
            Err(_) => Ok(figures),
        }
    });
    Row {
        addr: addr.to_string(),
        pid,
        outcome,
    }
}

fn failed(transport: &Transport, err: anyhow::Error) -> Row {
    Row {
        addr: transport.addr.clone(),
        pid: None,
        outcome: Err(err),
    }
}

/// Accepts the peer and echoes each message until it closes; returns the count
/// and checksum of every byte received.
fn serve_shm(listener: &mut ShmListener) -> Result<(u64, u64)> {
    let mut channel = listener
        .accept_timeout(IO_LIMIT)
        .context("wait for the child")?;
    channel.set_read_timeout(Some(IO_LIMIT));
    channel.set_write_timeout(Some(IO_LIMIT));
    let mut msg = Vec::new();
    let mut checksum = Checksum::new();
    let mut total = 0u64;
    while channel.recv_into(&mut msg)? {
        checksum.update(&msg);
        total += msg.len() as u64;
        channel.send(&msg)?;
    }
    Ok((total, checksum.finish()))
}

/// The child half on `shm:NAME`: like the stream peer, with messages.
pub(super) fn shm_peer(addr: &Address, rounds: u32, size: u32, bulk: u64) -> Result<()> {
    let mut opts = ipckit::ConnectOptions::new();
    opts.timeout(Duration::from_secs(10));
    let mut channel: ShmChannel = opts.connect_shm(addr)?;
    channel.set_read_timeout(Some(IO_LIMIT));
    channel.set_write_timeout(Some(IO_LIMIT));
    let size = usize::try_from(size).context("the round-trip size does not fit in memory")?;
    let (times, mut offset) = super::time_round_trips(rounds, size, |round, sent, back| {
        channel.send(sent)?;
        ensure!(
            channel.recv_into(back)?,
            "round trip {round}: the server closed"
        );
        Ok(())
    })?;

    // The bulk echo: send on one thread, receive and check on this one.
    let (mut tx, mut rx) = channel.split();
    let start = Instant::now();
    let first = offset;
    let sender = thread::Builder::new()
        .name("demo-shm-send".into())
        .spawn(move || -> Result<()> {
            let mut offset = first;
            let end = first + bulk;
            let mut buf = vec![0; CHUNK];
            while offset < end {
                let n = super::chunk_len(end - offset);
                fill_pattern(offset, &mut buf[..n]);
                tx.send(&buf[..n])?;
                offset += n as u64;
            }
            Ok(())
        })
        .context("start the sending thread")?;
    let mut want = vec![0; CHUNK];
    let mut got = Vec::with_capacity(CHUNK);
    let end = first + bulk;
    while offset < end {
        ensure!(
            rx.recv_into(&mut got)?,
            "bulk: the server closed after {} of {bulk} bytes",
            offset - first
        );
        let n = got.len();
        ensure!(
            n > 0 && offset + n as u64 <= end,
            "bulk: a message of {n} bytes at byte {}",
            offset - first
        );
        fill_pattern(offset, &mut want[..n]);
        if let Some(at) = first_difference(&want[..n], &got) {
            bail!(
                "bulk: byte {} came back changed",
                offset - first + at as u64
            );
        }
        offset += n as u64;
    }
    let bulk_time = start.elapsed();
    sender
        .join()
        .map_err(|_| anyhow!("the sending thread panicked"))??;
    super::report(&times, bulk, bulk_time)
}

/// What the mailslot step did: the messages, their bytes, and the time from
/// the first to the last one received.
pub(super) struct MailslotFigures {
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) took: Duration,
}

/// The mailslot at `addr`: this process receives; the child sends
/// `settings.rounds` messages of `settings.size` bytes, each checked here.
pub(super) fn run_mailslot(
    exe: &std::path::Path,
    addr: &str,
    settings: Settings,
) -> (Option<u32>, Result<MailslotFigures>) {
    let addr: Address = match addr.parse() {
        Ok(addr) => addr,
        Err(err) => return (None, Err(anyhow::Error::new(err))),
    };
    let pending = crate::cleanup::pending();
    let inbox = match MailslotReceiver::bind(&addr) {
        Ok(inbox) => inbox,
        Err(err) => return (None, Err(err.into())),
    };
    pending.socket_of(&addr);
    let child = match spawn_peer(exe, &addr, settings) {
        Ok(child) => child,
        Err(err) => return (None, Err(err)),
    };
    let pid = Some(child.id());
    let received = receive_messages(&inbox, settings);
    let reported = wait_child(child);
    drop(inbox);
    let outcome = received.and_then(|figures| {
        let said = reported?;
        ensure!(
            said.trim() == format!("sent={}", settings.rounds),
            "the child reported {:?}, not the {} messages it was given",
            said.trim(),
            settings.rounds
        );
        if let Some(file) = ipckit::platform::socket_file(&addr) {
            ensure!(
                file.symlink_metadata().is_err(),
                "the receiver left {} behind",
                file.display()
            );
        }
        Ok(figures)
    });
    (pid, outcome)
}

fn receive_messages(inbox: &MailslotReceiver, settings: Settings) -> Result<MailslotFigures> {
    let size = settings.size as usize;
    let mut want = vec![0; size];
    let mut got = Vec::with_capacity(size);
    let mut first = None;
    for i in 0..u64::from(settings.rounds) {
        inbox
            .recv_into(&mut got, Some(IO_LIMIT))
            .with_context(|| format!("message {i}"))?;
        first.get_or_insert_with(Instant::now);
        fill_pattern(i * size as u64, &mut want);
        ensure!(
            got.len() == size && first_difference(&want, &got).is_none(),
            "message {i} arrived changed ({} bytes, sent {size})",
            got.len()
        );
    }
    let took = first.map_or(Duration::ZERO, |t| t.elapsed());
    Ok(MailslotFigures {
        messages: u64::from(settings.rounds),
        bytes: u64::from(settings.rounds) * size as u64,
        took,
    })
}

/// The child half on `mailslot:NAME`: sends ROUNDS messages of SIZE bytes.
pub(super) fn mailslot_peer(addr: &Address, rounds: u32, size: u32) -> Result<()> {
    let sender = MailslotSender::connect(addr)?;
    let size = size as usize;
    let mut msg = vec![0; size];
    for i in 0..u64::from(rounds) {
        fill_pattern(i * size as u64, &mut msg);
        sender.send(&msg).with_context(|| format!("message {i}"))?;
    }
    println!("sent={rounds}");
    Ok(())
}

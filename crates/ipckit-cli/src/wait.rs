//! `ipckit wait ADDR --timeout DUR`: for scripts that start a server and must
//! wait until it serves.
//!
//! For `service:NAME` the wait sleeps on the registry's change notification
//! until an instance registers (the CLI's servers register only once bound),
//! then checks that its address answers. For any other address it checks the
//! address every 20 ms. "Answers" is told without taking a connection where a
//! connection would be a server's only client (`ipckit::registry::probe`: a
//! listening socket, free pipe instances, a live shared-memory channel, a
//! mailslot that opens); a TCP address, and an address that cannot be told
//! that way, is connected to.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ipckit::Address;
use ipckit::registry::{self, State};

/// How often an address that does not answer yet is checked again.
const RECHECK: Duration = Duration::from_millis(20);

/// Exits 0 (`Ok`) as soon as `addr` answers; an error (exit 1) at the timeout.
pub(crate) fn run(addr: &Address, timeout: Duration, verbose: bool) -> Result<()> {
    let limit = Instant::now() + timeout;
    loop {
        let target = match addr {
            Address::Service(name) => {
                let left = limit.saturating_duration_since(Instant::now());
                match registry::wait_for(name, left) {
                    Ok(found) => Some(found.address().clone()),
                    Err(e) if e.is_timeout() => None,
                    Err(e) => return Err(e.into()),
                }
            }
            addr => Some(addr.clone()),
        };
        if let Some(target) = target
            && answers(&target)
        {
            if verbose {
                eprintln!("{addr} answers at {target}");
            }
            return Ok(());
        }
        if Instant::now() >= limit {
            bail!("wait for {addr}: it did not answer within {timeout:?}");
        }
        std::thread::sleep(RECHECK.min(limit.saturating_duration_since(Instant::now())));
    }
}

fn answers(addr: &Address) -> bool {
    match registry::probe(addr) {
        State::Answering => true,
        State::NotAnswering => false,
        _ => ipckit::Stream::connect(addr).is_ok(),
    }
}

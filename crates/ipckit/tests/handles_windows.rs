//! The handle of a mailslot receiver (`ipckit::os::windows`): `AsHandle`
//! lends the mailslot itself, so a duplicate of it keeps the mailslot, and
//! its name, alive after the receiver is dropped.
#![cfg(windows)]

mod util;

use std::os::windows::io::{AsHandle, AsRawHandle};
use std::time::Duration;

use ipckit::{ErrorKind, MailslotReceiver};
use util::{unique_name, watchdog};

#[test]
fn a_mailslot_receiver_lends_the_mailslot_handle() {
    watchdog(Duration::from_secs(60), || {
        let addr = format!("mailslot:{}", unique_name("h-ms"));
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        assert_eq!(inbox.as_raw_handle(), inbox.as_handle().as_raw_handle());
        // DuplicateHandle: fails on anything but a live handle.
        let dup = inbox.as_handle().try_clone_to_owned().unwrap();
        drop(inbox);
        // The duplicate is the mailslot: its name is still taken.
        let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:#}");
        drop(dup);
        MailslotReceiver::bind(addr.as_str()).expect("free once the last handle closed");
    });
}

#[test]
fn a_tokio_mailslot_receiver_lends_the_mailslot_handle() {
    watchdog(Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = format!("mailslot:{}", unique_name("h-tms"));
        let inbox = rt.block_on(async { ipckit::tokio::MailslotReceiver::bind(addr.as_str()) });
        let inbox = inbox.unwrap();
        assert_eq!(inbox.as_raw_handle(), inbox.as_handle().as_raw_handle());
        let dup = inbox.as_handle().try_clone_to_owned().unwrap();
        drop(inbox);
        // The duplicate is the mailslot: its name is still taken.
        let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:#}");
        drop(dup);
        MailslotReceiver::bind(addr.as_str()).expect("free once the last handle closed");
    });
}

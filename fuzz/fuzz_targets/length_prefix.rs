//! The 4-byte big-endian length-prefix decoder (ipckit's `Framed`, which
//! ipckit-rpc uses for Python's framing): any bytes never panic, and every
//! message it yields fits the limit.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut f = ipckit::Framed::new(Cursor::new(data.to_vec()));
    if f.set_max_message_size(MAX).is_err() {
        return;
    }
    while let Ok(Some(msg)) = f.recv() {
        assert!(msg.len() <= MAX);
    }
});

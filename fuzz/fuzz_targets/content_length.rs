//! The `Content-Length` frame decoder: any bytes, fed in pieces whose sizes
//! the first byte picks, never panic, and every frame it yields fits the limit.
#![no_main]

use ipckit_rpc::framing::ContentLengthDecoder;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut d = ContentLengthDecoder::new(MAX);
    for piece in bytes.chunks(step) {
        d.extend(piece);
        loop {
            match d.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() <= MAX),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

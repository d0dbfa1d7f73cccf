//! The JSON-RPC decoders of both sides: any bytes never panic, and every
//! request the server side accepts encodes to text it decodes the same way.
#![no_main]

use ipckit_rpc::jsonrpc::{Entry, Incoming, decode_incoming, decode_responses};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_responses(data);
    let entries = match decode_incoming(data) {
        Incoming::Single(e) => vec![e],
        Incoming::Batch(es) => es,
        Incoming::Invalid(_) => return,
    };
    for e in entries {
        if let Entry::Request(req) = e {
            match decode_incoming(&req.encode()) {
                Incoming::Single(Entry::Request(back)) => assert_eq!(back, req),
                other => panic!("a valid request re-encoded to {other:?}"),
            }
        }
    }
});

//! Property tests of the decoders: whatever the bytes, the Content-Length,
//! length-prefix and JSON-RPC decoders never panic, and what the encoders
//! write decodes back to the same messages however the bytes are cut up.

use std::io::Cursor;

use ipckit::Framed;
use ipckit_rpc::RpcError;
use ipckit_rpc::framing::{ContentLengthDecoder, encode_content_length};
use ipckit_rpc::jsonrpc::{
    Entry, Id, Incoming, Request, Response, Responses, decode_incoming, decode_responses,
};
use proptest::prelude::*;
use serde_json::Value;

/// Feeds `bytes` to a Content-Length decoder in pieces of the given sizes.
fn decode_content_length(bytes: &[u8], cuts: &[usize], max: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut d = ContentLengthDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cuts.next().unwrap_or(&1)).clamp(1, rest.len());
        d.extend(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = d.next_frame().map_err(|e| e.message)? {
            out.push(frame);
        }
    }
    Ok(out)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<u64>().prop_map(Id::from),
        any::<i64>().prop_map(|n| Id::Number(n.into())),
        ".{0,10}".prop_map(Id::String),
    ]
}

fn params() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(json_value(), 0..4).prop_map(|v| Some(Value::Array(v))),
        prop::collection::btree_map(".{0,6}", json_value(), 0..4)
            .prop_map(|m| Some(Value::Object(m.into_iter().collect()))),
    ]
}

proptest! {
    #[test]
    fn content_length_round_trips_however_cut(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        cuts in prop::collection::vec(1usize..64, 1..8),
    ) {
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| encode_content_length(m)).collect();
        prop_assert_eq!(decode_content_length(&bytes, &cuts, 1024).unwrap(), msgs);
    }

    #[test]
    fn content_length_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(1usize..64, 1..8),
        max in 0usize..200,
    ) {
        let _ = decode_content_length(&bytes, &cuts, max);
    }

    #[test]
    fn content_length_headers_never_panic(
        lines in prop::collection::vec("[A-Za-z -]{0,16}:[ 0-9a-z]{0,24}", 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = lines.join("\r\n").into_bytes();
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes.extend_from_slice(&body);
        let _ = decode_content_length(&bytes, &[7], 100);
    }

    #[test]
    fn length_prefix_round_trips(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
    ) {
        let mut out = Framed::new(Cursor::new(Vec::new()));
        for m in &msgs {
            out.send(m).unwrap();
        }
        let mut back = Framed::new(Cursor::new(out.into_inner().into_inner()));
        let mut got = Vec::new();
        while let Some(m) = back.recv().unwrap() {
            got.push(m);
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn length_prefix_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), max in 1usize..300) {
        let mut f = Framed::new(Cursor::new(bytes));
        f.set_max_message_size(max).unwrap();
        while let Ok(Some(_)) = f.recv() {}
    }

    #[test]
    fn jsonrpc_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_incoming(&bytes);
        let _ = decode_responses(&bytes);
    }

    #[test]
    fn jsonrpc_decoders_never_panic_on_json(v in json_value()) {
        let text = v.to_string();
        let _ = decode_incoming(text.as_bytes());
        let _ = decode_responses(text.as_bytes());
    }

    #[test]
    fn requests_round_trip(method in ".{0,20}", params in params(), id in prop::option::of(id())) {
        let req = Request { method, params, id };
        match decode_incoming(&req.encode()) {
            Incoming::Single(Entry::Request(back)) => prop_assert_eq!(back, req),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn responses_round_trip(
        id in id(),
        result in json_value(),
        code in any::<i64>(),
        message in ".{0,20}",
        ok in any::<bool>(),
    ) {
        let outcome = if ok { Ok(result) } else { Err(RpcError::new(code, message)) };
        let resp = Response { id, outcome };
        prop_assert_eq!(decode_responses(&resp.encode()), Ok(Responses::Single(resp.clone())));
    }
}

//! bad input: malformed frames for every RPC framing, the authkey handshake and
//! the message channel's memfd records, sent to real `ipckit` servers; each
//! answered as docs/RPC.md documents, and the server serves a good client after.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipckit::{MessageStream, Stream};
use ipckit_rpc::{ClientOptions, Framing};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketType,
};
use serde_json::Value;

use crate::load::{Kind, echo_messages, fresh_addr, start_server};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Proc};

const MSG_32600: &str = "message-framing -32600 for an oversized request";

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("badinput/length-prefix", 60, None, |c| {
            rpc_corpus(c, Framing::LengthPrefix)
        }),
        Scenario::new("badinput/content-length", 60, None, |c| {
            rpc_corpus(c, Framing::ContentLength)
        }),
        Scenario::new("badinput/message", 60, Some(MSG_32600), |c| {
            rpc_corpus(c, Framing::Message)
        }),
        Scenario::new("badinput/memfd-records", 30, None, memfd_records),
    ]
}

fn framing_arg(f: Framing) -> &'static str {
    match f {
        Framing::ContentLength => "content-length",
        Framing::Message => "message",
        _ => "length-prefix",
    }
}

/// Starts `ipckit serve-demo` on a fresh portable name.
pub(crate) fn start_demo(
    ctx: &Ctx,
    framing: Framing,
    authkey: Option<&str>,
) -> Result<(Proc, String), String> {
    let addr = fresh_addr(ctx, Kind::Pipe);
    let mut args = vec!["-v", "serve-demo", "--framing", framing_arg(framing)];
    if let Some(k) = authkey {
        args.extend(["--authkey", k]);
    }
    args.push(&addr);
    let mut p = Proc::spawn(&mut ctx.ipckit(&args), false)?;
    if p.stderr_line("listening on", Duration::from_secs(10))
        .is_none()
    {
        return Err(format!(
            "serve-demo did not start (exit {:?}): {}",
            p.exited_within(Duration::ZERO),
            p.stderr_text()
        ));
    }
    Ok((p, addr))
}

/// A good client calls `add [2, 3]`; an error unless it gets 5.
pub(crate) fn good_call(addr: &str, framing: Framing, authkey: Option<&str>) -> Result<(), String> {
    let (a, k) = (addr.to_string(), authkey.map(str::to_string));
    util::bounded(Duration::from_secs(15), move || {
        let mut o = ClientOptions::new();
        o.framing(framing).timeout(Duration::from_secs(10));
        if let Some(k) = k {
            o.authkey(k);
        }
        let c = o.connect(a.as_str()).map_err(|e| e.to_string())?;
        match c.call::<_, i64>("add", (2, 3)) {
            Ok(5) => Ok(()),
            other => Err(format!("add [2,3] gave {other:?}")),
        }
    })
    .unwrap_or_else(|| Err("a good client hung".into()))
}

/// The 4-byte big-endian length prefix.
pub(crate) fn lp(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn cl(body: &[u8]) -> Vec<u8> {
    let mut v = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// One raw connection to an RPC server, in a framing.
pub(crate) enum Raw {
    Bytes(Stream, Framing),
    Msg(MessageStream),
}

impl Raw {
    pub(crate) fn connect(addr: &str, framing: Framing) -> Result<Raw, String> {
        let t = Some(Duration::from_secs(10));
        if framing == Framing::Message {
            let mut m = MessageStream::connect(addr).map_err(|e| e.to_string())?;
            m.set_read_timeout(t).map_err(|e| e.to_string())?;
            Ok(Raw::Msg(m))
        } else {
            let mut s = Stream::connect(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(t).map_err(|e| e.to_string())?;
            Ok(Raw::Bytes(s, framing))
        }
    }

    /// Sends `bytes` as they are (a byte stream) or as one message.
    pub(crate) fn send_raw(&self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Raw::Bytes(s, _) => {
                let mut s = s;
                s.write_all(bytes).map_err(|e| e.to_string())
            }
            Raw::Msg(m) => m.send(bytes).map_err(|e| e.to_string()),
        }
    }

    /// Frames `body` in this connection's framing and sends it.
    pub(crate) fn send(&self, body: &[u8]) -> Result<(), String> {
        match self {
            Raw::Bytes(_, Framing::ContentLength) => self.send_raw(&cl(body)),
            Raw::Bytes(..) => self.send_raw(&lp(body)),
            Raw::Msg(_) => self.send_raw(body),
        }
    }

    /// The next frame; `None` at the end of the connection.
    pub(crate) fn reply(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Raw::Msg(m) => m.recv().map_err(|e| e.to_string()),
            Raw::Bytes(s, Framing::ContentLength) => read_cl(s),
            Raw::Bytes(s, _) => {
                let mut len = [0u8; 4];
                match s.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e.to_string()),
                }
                let mut body = vec![0; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut body).map_err(|e| e.to_string())?;
                Ok(Some(body))
            }
        }
    }
}

fn read_cl(s: &mut Stream) -> Result<Option<Vec<u8>>, String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err("the end inside a header".into()),
            Ok(_) => head.push(b[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("a reply without Content-Length: {text:?}"))?;
    let mut body = vec![0; len];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(Some(body))
}

/// What a malformed input must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An error reply with this code; the connection goes on.
    Code(i64),
    /// An error reply with this code, then the end of the connection.
    CodeThenEnd(i64),
    /// The connection ends with no reply.
    End,
    /// An array of this many responses.
    Batch(usize),
    /// No reply at all; the connection goes on.
    Nothing,
}

fn code_of(v: &Value) -> Option<i64> {
    v.get("error")?.get("code")?.as_i64()
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![b'['; depth];
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

fn batch(n: usize) -> Vec<u8> {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","method":"add","params":[{i},1],"id":{i}}}"#))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

/// (name, raw bytes already framed, what it must get)
fn corpus(framing: Framing) -> Vec<(&'static str, Vec<u8>, Expect)> {
    let frame = |b: &[u8]| match framing {
        Framing::ContentLength => cl(b),
        Framing::Message => b.to_vec(),
        _ => lp(b),
    };
    let mut v = vec![
        ("garbage", frame(b"{not json at all"), Expect::Code(-32700)),
        (
            "not-utf8",
            frame(&[0xff, 0xfe, 0x00, 0x80]),
            Expect::Code(-32700),
        ),
        ("empty", frame(b""), Expect::Code(-32700)),
        (
            "no-jsonrpc",
            frame(br#"{"method":"add","params":[1,2],"id":1}"#),
            Expect::Code(-32600),
        ),
        (
            "scalar-params",
            frame(br#"{"jsonrpc":"2.0","method":"add","params":3,"id":1}"#),
            Expect::Code(-32600),
        ),
        (
            "unknown-method",
            frame(br#"{"jsonrpc":"2.0","method":"nope","id":1}"#),
            Expect::Code(-32601),
        ),
        (
            "bad-params",
            frame(br#"{"jsonrpc":"2.0","method":"add","params":["a"],"id":1}"#),
            Expect::Code(-32602),
        ),
        (
            "deep-nesting-100000",
            frame(&nested(100_000)),
            Expect::Code(-32700),
        ),
        ("empty-batch", frame(b"[]"), Expect::Code(-32600)),
        (
            "huge-batch-20000",
            frame(&batch(20_000)),
            Expect::Batch(20_000),
        ),
        (
            "notifications-only-batch",
            frame(br#"[{"jsonrpc":"2.0","method":"add","params":[1,2]}]"#),
            Expect::Nothing,
        ),
    ];
    match framing {
        Framing::Message => {
            v.push((
                "oversized-65MiB",
                vec![b' '; 65 << 20],
                Expect::CodeThenEnd(-32600),
            ));
        }
        Framing::ContentLength => {
            v.push((
                "oversized-length",
                b"Content-Length: 100000000\r\n\r\n".to_vec(),
                Expect::CodeThenEnd(-32600),
            ));
            v.push((
                "no-content-length",
                b"Content-Type: x\r\n\r\n{}".to_vec(),
                Expect::End,
            ));
            v.push((
                "length-not-decimal",
                b"Content-Length: 0x10\r\n\r\n".to_vec(),
                Expect::End,
            ));
            v.push((
                "two-lengths",
                b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec(),
                Expect::End,
            ));
            v.push((
                "line-without-colon",
                b"Content-Length 2\r\n\r\n{}".to_vec(),
                Expect::End,
            ));
            let mut big = b"X-Filler: ".to_vec();
            big.extend(vec![b'a'; 9000]);
            v.push(("headers-over-8KiB", big, Expect::End));
            v.push((
                "truncated-body",
                b"Content-Length: 100\r\n\r\n{\"jsonrpc\"".to_vec(),
                Expect::End,
            ));
        }
        _ => {
            v.push((
                "oversized-prefix",
                0x7fff_ffffu32.to_be_bytes().to_vec(),
                Expect::CodeThenEnd(-32600),
            ));
            let mut py = (-1i32).to_be_bytes().to_vec();
            py.extend((1u64 << 40).to_be_bytes());
            v.push(("python-8-byte-length", py, Expect::CodeThenEnd(-32600)));
            let mut t = 100u32.to_be_bytes().to_vec();
            t.extend(b"{\"jsonrpc\"");
            v.push(("truncated-body", t, Expect::End));
        }
    }
    v
}

fn check_case(
    addr: &str,
    framing: Framing,
    bytes: &[u8],
    expect: Expect,
) -> Result<String, String> {
    let mut raw = Raw::connect(addr, framing)?;
    raw.send_raw(bytes)?;
    if matches!(expect, Expect::End) {
        // Cases that end early in a frame: the client closes its side too.
        if let Raw::Bytes(s, _) = &raw {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
    let good = br#"{"jsonrpc":"2.0","method":"add","params":[40,2],"id":"after"}"#;
    if matches!(expect, Expect::Nothing) {
        raw.send(good)?;
    }
    let reply = raw.reply()?;
    let parsed: Option<Value> = reply
        .as_deref()
        .and_then(|r| serde_json::from_slice(r).ok());
    let show = || {
        reply.as_ref().map_or("the end".into(), |r| {
            String::from_utf8_lossy(&r[..r.len().min(160)]).into_owned()
        })
    };
    match expect {
        Expect::Code(c) | Expect::CodeThenEnd(c) => {
            if parsed.as_ref().and_then(code_of) != Some(c) {
                return Err(format!("expected a {c} reply, got {}", show()));
            }
            if matches!(expect, Expect::CodeThenEnd(_)) {
                if let Ok(Some(more)) = raw.reply() {
                    return Err(format!(
                        "the connection went on after the {c} ({} more bytes)",
                        more.len()
                    ));
                }
                return Ok(format!("{c}+closed"));
            }
            raw.send(good)?;
            let next = raw.reply()?;
            let v: Option<Value> = next.as_deref().and_then(|r| serde_json::from_slice(r).ok());
            if v.as_ref().and_then(|v| v.get("result")?.as_i64()) != Some(42) {
                return Err(format!(
                    "after the {c}, the same connection did not answer a good request: {v:?}"
                ));
            }
            Ok(c.to_string())
        }
        Expect::Batch(n) => match parsed {
            Some(Value::Array(a))
                if a.len() == n && a.iter().all(|r| r.get("result").is_some()) =>
            {
                Ok(format!("array[{n}]"))
            }
            _ => Err(format!("expected an array of {n} results, got {}", show())),
        },
        Expect::Nothing => match parsed
            .as_ref()
            .and_then(|v| v.get("id")?.as_str().map(str::to_string))
        {
            Some(id) if id == "after" => Ok("no-reply".into()),
            _ => Err(format!(
                "expected no reply before the next answer, got {}",
                show()
            )),
        },
        Expect::End => match reply {
            None => Ok("closed".into()),
            Some(_) => Err(format!(
                "expected the connection closed with no reply, got {}",
                show()
            )),
        },
    }
}

/// Every case of the corpus on a fresh connection to one `serve-demo`, then a
/// good client: the same server must serve it after each.
fn rpc_corpus(ctx: &Ctx, framing: Framing) -> Outcome {
    let (mut server, addr) = start_demo(ctx, framing, None)?;
    let cases = corpus(framing);
    let (mut ok, mut failures) = (0, Vec::new());
    for (name, bytes, expect) in &cases {
        let (a, b, e) = (addr.clone(), bytes.clone(), *expect);
        let got = util::bounded(Duration::from_secs(20), move || {
            check_case(&a, framing, &b, e)
        })
        .unwrap_or_else(|| Err("no answer within 20 s (hang)".into()));
        let after = if server.alive() {
            good_call(&addr, framing, None)
        } else {
            Err(format!("the server died: {}", server.stderr_text()))
        };
        match (got, after) {
            (Ok(_), Ok(())) => ok += 1,
            (Err(e), _) => failures.push(format!("{name}: {e}")),
            (Ok(_), Err(e)) => failures.push(format!("{name}: then a good client: {e}")),
        }
    }
    let figures = format!(
        "inputs={} answered-as-documented={ok} server-alive={}",
        cases.len(),
        server.alive()
    );
    if failures.is_empty() {
        Ok(format!("{figures} lost=0"))
    } else {
        Err(format!("{figures}; {}", failures.join("; ")))
    }
}

const LARGE_MAGIC: &[u8; 16] = b"\0ipckit-memfd-1\0";

fn memfd(bytes: &[u8]) -> Result<OwnedFd, String> {
    let fd = rustix::fs::memfd_create("ipckit-stress", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| e.to_string())?;
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).map_err(|e| e.to_string())?;
    Ok(OwnedFd::from(f))
}

fn large(len: u64) -> Vec<u8> {
    [LARGE_MAGIC.as_slice(), &len.to_le_bytes()].concat()
}

/// Raw `SOCK_SEQPACKET` records, with and without descriptors, to `ipckit
/// listen --message --echo`: the ones that are data come back as they were
/// sent; the broken memfd records end that connection; the server goes on.
fn memfd_records(ctx: &Ctx) -> Outcome {
    let (server, addr) = start_server(ctx, Kind::Message, &fresh_addr(ctx, Kind::Message))?;
    let name = addr.trim_start_matches("pipe:");
    let path = ctx.sock_path(name);
    // (name, payload, descriptors, Some(echo) or None for "connection ends")
    type Case = (&'static str, Vec<u8>, Vec<OwnedFd>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("magic-without-fd", large(1000), vec![], Some(large(1000))),
        (
            "file-shorter-than-announced",
            large(1000),
            vec![memfd(&[1; 10])?],
            None,
        ),
        ("length-2^63", large(1 << 63), vec![memfd(&[1; 10])?], None),
        ("empty-file", large(5), vec![memfd(&[])?], None),
        (
            "garbage-with-fd",
            b"garbage record".to_vec(),
            vec![memfd(&[1; 10])?],
            Some(b"garbage record".to_vec()),
        ),
        (
            "magic-with-two-fds",
            large(10),
            vec![memfd(&[1; 10])?, memfd(&[1; 10])?],
            Some(large(10)),
        ),
        (
            "truncated-magic-with-fd",
            LARGE_MAGIC[..10].to_vec(),
            vec![memfd(&[1; 10])?],
            Some(LARGE_MAGIC[..10].to_vec()),
        ),
        (
            "valid-large-record",
            large(100),
            vec![memfd(&[7; 100])?],
            Some(vec![7; 100]),
        ),
    ];
    let n = cases.len();
    let (mut ok, mut failures) = (0, Vec::new());
    for (name, payload, fds, want) in cases {
        let p = path.clone();
        let got = util::bounded(Duration::from_secs(15), move || {
            record_case(&p, &payload, &fds, want.as_deref())
        })
        .unwrap_or_else(|| Err("hang".into()));
        let a = addr.clone();
        let after = util::bounded(Duration::from_secs(15), move || {
            echo_messages(&a, 3, 64 << 10)
        })
        .unwrap_or_else(|| Err("hang".into()));
        match (got, after) {
            (Ok(()), Ok(())) => ok += 1,
            (Err(e), _) => failures.push(format!("{name}: {e}")),
            (Ok(()), Err(e)) => failures.push(format!("{name}: then a good client: {e}")),
        }
    }
    drop(server);
    let figures = format!("records={n} handled-as-documented={ok}");
    if failures.is_empty() {
        Ok(format!("{figures} lost=0"))
    } else {
        Err(format!("{figures}; {}", failures.join("; ")))
    }
}

fn record_case(
    path: &std::path::Path,
    payload: &[u8],
    fds: &[OwnedFd],
    want: Option<&[u8]>,
) -> Result<(), String> {
    let sock = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None)
        .map_err(|e| e.to_string())?;
    let sa = SocketAddrUnix::new(path).map_err(|e| e.to_string())?;
    rustix::net::connect(&sock, &sa).map_err(|e| format!("connect {}: {e}", path.display()))?;
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(10)),
    )
    .map_err(|e| e.to_string())?;
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err("no room for the descriptors".into());
    }
    rustix::net::sendmsg(
        &sock,
        &[std::io::IoSlice::new(payload)],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| format!("sendmsg: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    let got = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty());
    match (got, want) {
        (Ok((n, _)), Some(w)) if &buf[..n] == w => Ok(()),
        (Ok((0, _)), None) | (Err(_), None) => Ok(()),
        (Ok((n, _)), None) => Err(format!(
            "expected the connection to end, got a {n}-byte record back"
        )),
        (Ok((n, _)), Some(w)) => Err(format!("expected a {}-byte echo, got {n} bytes", w.len())),
        (Err(e), Some(_)) => Err(format!("expected an echo, got {e}")),
    }
}

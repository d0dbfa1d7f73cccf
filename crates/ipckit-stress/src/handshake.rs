//! bad input, the authkey handshake (multiprocessing.connection's): a client
//! that breaks it at every step gets `#FAILURE#` or the end of the connection,
//! never a session; the server serves a good client after each.

use std::time::Duration;

use ipckit_rpc::Framing;
use ipckit_rpc::auth::{self, ChallengeDigest};

use crate::badinput::{Raw, good_call, start_demo};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome};

const KEY: &[u8] = b"stress-key";

/// One step of a case: what the client does after reading the server's
/// challenge.
type Step = fn(&mut Raw, &[u8]) -> Result<(), String>;

/// Reads the server's verdict; an error unless it is `want`.
fn verdict(raw: &mut Raw, want: &[u8]) -> Result<(), String> {
    let got = raw.reply()?.unwrap_or_default();
    if got != want {
        return Err(format!(
            "verdict {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        ));
    }
    Ok(())
}

/// The connection must end now (a `#FAILURE#` first is allowed), with no
/// session.
fn ends(raw: &mut Raw) -> Result<(), String> {
    if let Raw::Bytes(s, _) = raw {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    match raw.reply() {
        Ok(None) | Err(_) => Ok(()),
        Ok(Some(f)) if f == auth::FAILURE => match raw.reply() {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some(more)) => Err(format!("{} bytes after #FAILURE#", more.len())),
        },
        Ok(Some(f)) => Err(format!(
            "got {:?} instead of the end",
            String::from_utf8_lossy(&f[..f.len().min(60)])
        )),
    }
}

/// Answers the server's challenge with the right key and reads `#WELCOME#`.
fn welcomed(raw: &mut Raw, challenge: &[u8]) -> Result<(), String> {
    raw.send(&auth::answer(KEY, challenge).map_err(|e| e.to_string())?)?;
    verdict(raw, auth::WELCOME)
}

/// A call must be answered: the session works.
fn session(raw: &mut Raw) -> Result<(), String> {
    raw.send(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#)?;
    let r = raw.reply()?.unwrap_or_default();
    if String::from_utf8_lossy(&r).contains("\"result\":3") {
        Ok(())
    } else {
        Err(format!(
            "no answer after the handshake: {:?}",
            String::from_utf8_lossy(&r)
        ))
    }
}

fn cases() -> Vec<(&'static str, Step)> {
    vec![
        ("closes-at-once", |_, _| Ok(())),
        ("garbage-answer", |r, _| {
            r.send(b"garbage")?;
            verdict(r, auth::FAILURE)?;
            ends(r)
        }),
        ("wrong-key", |r, c| {
            r.send(&auth::answer(b"wrong", c).map_err(|e| e.to_string())?)?;
            verdict(r, auth::FAILURE)?;
            ends(r)
        }),
        ("json-instead-of-answer", |r, _| {
            r.send(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#)?;
            verdict(r, auth::FAILURE)?;
            ends(r)
        }),
        ("oversized-answer-1MiB", |r, _| {
            r.send_raw(&(1u32 << 20).to_be_bytes())?;
            ends(r)
        }),
        ("truncated-answer", |r, _| {
            r.send_raw(&[40u32.to_be_bytes().as_slice(), b"abc"].concat())?;
            ends(r)
        }),
        ("garbage-challenge-back", |r, c| {
            welcomed(r, c)?;
            r.send(b"#CHALLENGE#short")?;
            ends(r)
        }),
        ("not-a-challenge-back", |r, c| {
            welcomed(r, c)?;
            r.send(b"nonsense")?;
            ends(r)
        }),
        ("client-refuses-server", |r, c| {
            welcomed(r, c)?;
            let msg = auth::new_challenge(ChallengeDigest::Sha256).map_err(|e| e.to_string())?;
            r.send(&[auth::CHALLENGE, &msg].concat())?;
            r.reply()?.ok_or("no answer to our challenge")?;
            r.send(auth::FAILURE)?;
            ends(r)
        }),
        ("right-key-both-ways", |r, c| {
            welcomed(r, c)?;
            let msg = auth::new_challenge(ChallengeDigest::Sha256).map_err(|e| e.to_string())?;
            r.send(&[auth::CHALLENGE, &msg].concat())?;
            let answer = r.reply()?.ok_or("no answer to our challenge")?;
            auth::verify(KEY, &msg, &answer).map_err(|e| format!("the server's answer: {e}"))?;
            r.send(auth::WELCOME)?;
            session(r)
        }),
    ]
}

/// The authkey handshake, broken every way a client can break it, against
/// `ipckit serve-demo --authkey`.
/// The handshake's scenario (listed with the bad-input ones).
pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new("badinput/authkey", 60, None, authkey)]
}

fn authkey(ctx: &Ctx) -> Outcome {
    let key = std::str::from_utf8(KEY).unwrap_or_default();
    let (mut server, addr) = start_demo(ctx, Framing::LengthPrefix, Some(key))?;
    let cases = cases();
    let (mut ok, mut failures) = (0, Vec::new());
    for (name, step) in &cases {
        let (a, step) = (addr.clone(), *step);
        let got = util::bounded(Duration::from_secs(20), move || {
            let mut raw = Raw::connect(&a, Framing::LengthPrefix)?;
            let challenge = raw.reply()?.ok_or("no challenge")?;
            if !challenge.starts_with(auth::CHALLENGE) {
                return Err("the first frame is not a challenge".to_string());
            }
            step(&mut raw, &challenge)
        })
        .unwrap_or_else(|| Err("hang".into()));
        let after = if server.alive() {
            good_call(&addr, Framing::LengthPrefix, Some(key))
        } else {
            Err(format!("the server died: {}", server.stderr_text()))
        };
        match (got, after) {
            (Ok(()), Ok(())) => ok += 1,
            (Err(e), _) => failures.push(format!("{name}: {e}")),
            (Ok(()), Err(e)) => failures.push(format!("{name}: then a good client: {e}")),
        }
    }
    let figures = format!("handshakes={} answered-as-documented={ok}", cases.len());
    if failures.is_empty() {
        Ok(format!("{figures} lost=0"))
    } else {
        Err(format!("{figures}; {}", failures.join("; ")))
    }
}

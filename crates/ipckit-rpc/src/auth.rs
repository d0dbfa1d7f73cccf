//! The `authkey` handshake of Python's `multiprocessing.connection`, both forms.
//!
//! The side that accepts the connection *delivers* a challenge and then
//! *answers* one; the side that connected answers first, then delivers. Each
//! step is one frame:
//!
//! 1. deliverer → `#CHALLENGE#` + MESSAGE, where MESSAGE is 20 random bytes
//!    (Python ≤ 3.11, [`ChallengeDigest::Md5`]) or `{sha256}` + 40 random bytes
//!    (Python 3.12+, [`ChallengeDigest::Sha256`]);
//! 2. answerer → the HMAC of MESSAGE (the whole of it, `{sha256}` prefix
//!    included) keyed with the authkey: the raw 16-byte HMAC-MD5 when MESSAGE is
//!    20 bytes (or 16), else `{NAME}` + HMAC-NAME for the `{NAME}` MESSAGE starts
//!    with;
//! 3. deliverer → `#WELCOME#`, or `#FAILURE#` and the connection is closed.
//!
//! As CPython 3.12's `_verify_challenge` does, a deliverer accepts a raw 16-byte
//! HMAC-MD5 answer to a `{sha256}` challenge (that is how a Python 3.11 client
//! answers one: it takes the whole MESSAGE as legacy), and an answer that names
//! another allowed digest. The digests this crate computes are `md5`, `sha256`
//! and `sha384`; `sha3_256` and `sha3_384`, which CPython also allows, are
//! refused with an error that says so.

use std::time::Duration;

use hmac::{Hmac, Mac};

use crate::error::{Error, ErrorKind, Result};

/// The prefix of a challenge frame.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The frame that accepts an answer.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The frame that refuses an answer.
pub const FAILURE: &[u8] = b"#FAILURE#";
/// The largest handshake frame accepted, as Python's `recv_bytes(256)`.
pub const MAX_HANDSHAKE_FRAME: usize = 256;

/// The digests CPython 3.12 allows in a `{NAME}` prefix.
const ALLOWED: [&str; 5] = ["md5", "sha256", "sha384", "sha3_256", "sha3_384"];
/// A message of either length is the legacy form, which has no prefix.
const LEGACY_LENGTHS: [usize; 2] = [20, 16];

/// Which challenge a deliverer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum ChallengeDigest {
    /// `{sha256}` + 40 random bytes, as Python 3.12+ sends; Python 3.11 and
    /// older answer it too (with HMAC-MD5, which is accepted).
    #[default]
    Sha256,
    /// 20 random bytes and an HMAC-MD5 answer, as Python 3.11 and older send.
    Md5,
}

fn auth_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, message)
}

/// HMAC-`name` of `msg` keyed with `key`, for the digests this crate computes.
fn mac(name: &str, key: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length.
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match name {
        "md5" => Ok(run::<Hmac<md5::Md5>>(key, msg)),
        "sha256" => Ok(run::<Hmac<sha2::Sha256>>(key, msg)),
        "sha384" => Ok(run::<Hmac<sha2::Sha384>>(key, msg)),
        other => Err(auth_error(format!(
            "the authkey handshake asks for the digest {other:?}, which ipckit-rpc does not compute (it does md5, sha256 and sha384)"
        ))),
    }
}

/// A fresh challenge MESSAGE (what follows `#CHALLENGE#`).
///
/// # Errors
///
/// The operating system's random source failed.
pub fn new_challenge(digest: ChallengeDigest) -> Result<Vec<u8>> {
    let (prefix, n): (&[u8], usize) = match digest {
        ChallengeDigest::Sha256 => (b"{sha256}", 40),
        ChallengeDigest::Md5 => (b"", 20),
    };
    let mut random = vec![0u8; n];
    getrandom::fill(&mut random).map_err(|e| {
        auth_error(format!(
            "make an authkey challenge: the OS random source failed: {e}"
        ))
    })?;
    let mut msg = prefix.to_vec();
    msg.extend_from_slice(&random);
    Ok(msg)
}

/// The digest name and the payload of a challenge MESSAGE or of an answer, as
/// CPython's `_get_digest_name_and_payload`: `""` for the legacy form.
fn digest_and_payload(msg: &[u8]) -> Result<(&str, &[u8])> {
    if LEGACY_LENGTHS.contains(&msg.len()) {
        return Ok(("", msg));
    }
    // CPython looks for the '}' within the first 2 + the longest name bytes.
    let longest = ALLOWED.iter().map(|d| d.len()).max().unwrap_or(0);
    if msg.first() == Some(&b'{') {
        let window = &msg[..msg.len().min(longest + 2)];
        if let Some(curly) = window.iter().skip(1).position(|&b| b == b'}') {
            let name = &msg[1..=curly];
            if let Some(d) = ALLOWED.iter().find(|d| d.as_bytes() == name) {
                return Ok((d, &msg[curly + 2..]));
            }
        }
    }
    Err(auth_error(format!(
        "the authkey handshake message of {} bytes is neither the legacy form (16 or 20 bytes) nor `{{digest}}` + payload with an allowed digest",
        msg.len()
    )))
}

/// The answer to a challenge frame (`#CHALLENGE#` + MESSAGE), as CPython's
/// `answer_challenge` computes it.
///
/// # Errors
///
/// [`ErrorKind::Authentication`] for a frame that is not a challenge, a MESSAGE
/// under 20 bytes, or a digest this crate does not compute.
pub fn answer(authkey: &[u8], frame: &[u8]) -> Result<Vec<u8>> {
    let Some(msg) = frame.strip_prefix(CHALLENGE) else {
        return Err(auth_error(format!(
            "expected an authkey challenge (#CHALLENGE#...) from the peer, got {} bytes that are not one (does the peer use an authkey?)",
            frame.len()
        )));
    };
    if msg.len() < 20 {
        return Err(auth_error(format!(
            "the peer's authkey challenge is too short: {} bytes (at least 20)",
            msg.len()
        )));
    }
    let (name, _) = digest_and_payload(msg)?;
    if name.is_empty() {
        return mac("md5", authkey, msg);
    }
    let mut out = format!("{{{name}}}").into_bytes();
    out.extend_from_slice(&mac(name, authkey, msg)?);
    Ok(out)
}

/// Checks an answer to the challenge MESSAGE `msg`, as CPython 3.12's
/// `_verify_challenge`, in constant time.
///
/// # Errors
///
/// [`ErrorKind::Authentication`] naming what is wrong: a wrong digest (the
/// authkeys differ), a digest of the wrong length, an unknown digest.
pub fn verify(authkey: &[u8], msg: &[u8], response: &[u8]) -> Result<()> {
    let (name, got) = digest_and_payload(response)?;
    let name = if name.is_empty() { "md5" } else { name };
    let expected = mac(name, authkey, msg)?;
    if expected.len() != got.len() {
        return Err(auth_error(format!(
            "the peer's {name} answer to the authkey challenge is {} bytes, expected {}",
            got.len(),
            expected.len()
        )));
    }
    // Every byte is compared, whatever the first difference, so the time
    // taken says nothing about where it is.
    let diff = expected
        .iter()
        .zip(got)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(auth_error(
            "the peer's answer to the authkey challenge is wrong: the authkeys differ",
        ));
    }
    Ok(())
}

/// Checks the deliverer's verdict on our answer.
///
/// # Errors
///
/// [`ErrorKind::Authentication`] for `#FAILURE#` or anything but `#WELCOME#`.
pub fn check_verdict(frame: &[u8]) -> Result<()> {
    if frame == WELCOME {
        Ok(())
    } else if frame == FAILURE {
        Err(auth_error(
            "the peer refused our answer to its authkey challenge (#FAILURE#): the authkeys differ",
        ))
    } else {
        Err(auth_error(format!(
            "expected #WELCOME# or #FAILURE# from the peer after the authkey challenge, got {} other bytes",
            frame.len()
        )))
    }
}

/// One frame of the handshake each way: the connections of this crate
/// implement it, and so can any message channel (a `ipckit::Framed` stream, an
/// `ipckit::MessageStream`) that is to pass the handshake before carrying
/// messages of its own, as `ipckit connect --message --authkey` does.
pub trait HandshakeIo {
    /// Sends one handshake frame.
    ///
    /// # Errors
    ///
    /// The channel's failure.
    fn send_frame(&mut self, frame: &[u8]) -> Result<()>;
    /// Receives one handshake frame (at most [`MAX_HANDSHAKE_FRAME`] bytes).
    ///
    /// # Errors
    ///
    /// The channel's failure; the peer closing it.
    fn recv_frame(&mut self) -> Result<Vec<u8>>;
}

/// The deliverer's half, what a `multiprocessing.connection.Listener` does
/// first: challenge, check the answer, verdict (`#WELCOME#` or `#FAILURE#`).
/// A `Client` then delivers a challenge of its own: call [`answer_peer`] after.
///
/// # Errors
///
/// [`ErrorKind::Authentication`] when the
/// peer's answer is wrong (the peer was sent `#FAILURE#`); the channel's failure.
pub fn deliver(io: &mut impl HandshakeIo, key: &[u8], digest: ChallengeDigest) -> Result<()> {
    let msg = new_challenge(digest)?;
    io.send_frame(&[CHALLENGE, &msg].concat())?;
    let response = io.recv_frame()?;
    match verify(key, &msg, &response) {
        Ok(()) => io.send_frame(WELCOME),
        Err(e) => {
            let _ = io.send_frame(FAILURE);
            Err(e)
        }
    }
}

/// The answerer's half, what a `multiprocessing.connection.Client` does first:
/// read the challenge, answer, read the verdict.
///
/// # Errors
///
/// [`ErrorKind::Authentication`] when the
/// peer refused the answer (`#FAILURE#`: the authkeys differ) or sent no
/// challenge; the channel's failure.
pub fn answer_peer(io: &mut impl HandshakeIo, key: &[u8]) -> Result<()> {
    let challenge = io.recv_frame()?;
    io.send_frame(&answer(key, &challenge)?)?;
    check_verdict(&io.recv_frame()?)
}

/// The handshake a connection of this crate runs: with `key`, the accepting
/// side's way round (deliver a `digest` challenge, then answer one) or the
/// connecting side's, within `timeout`.
#[derive(Clone, Copy)]
pub(crate) struct Handshake<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) digest: ChallengeDigest,
    pub(crate) accepting: bool,
    pub(crate) timeout: Duration,
}

/// The error of a handshake that did not finish within `timeout`.
pub(crate) fn handshake_timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::TimedOut,
        format!("the handshake did not finish within {timeout:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected HMACs below were computed once with CPython 3.11's `hmac`
    // module, independently of this crate:
    //   python3 -c "import hmac; print(hmac.new(b'secret', MSG, 'md5').hexdigest())"
    // with MSG = bytes(range(20)) for the legacy form, and
    //   MSG = b'{sha256}' + bytes(range(40)) for the 3.12 form (with 'md5' for
    //   the legacy answer to it, and 'sha256' for the modern one).
    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const LEGACY_MD5: &str = "7defa9cc46abc3583325d17ccda75190";
    const MODERN_MD5: &str = "8e48d2bb349b4b72b9382999ed5b62eb";
    const MODERN_SHA256: &str = "fc57fbe650d6124b98215e7b5d197d5807ad69982d275a9735ea2d56f1fa6989";
    const SHA384: &str = "bae78a3376369f7b803a8473318a9b7062495b47434159ac84fc92ddb33c51b277c44c3edd9a5f9cb7d628f21abe2665";

    fn legacy_msg() -> Vec<u8> {
        (0u8..20).collect()
    }

    fn prefixed(name: &str) -> Vec<u8> {
        [
            format!("{{{name}}}").as_bytes(),
            &(0u8..40).collect::<Vec<_>>(),
        ]
        .concat()
    }

    fn frame(msg: &[u8]) -> Vec<u8> {
        [CHALLENGE, msg].concat()
    }

    #[test]
    fn answers_match_pythons_hmac() {
        assert_eq!(
            answer(b"secret", &frame(&legacy_msg())).unwrap(),
            hex(LEGACY_MD5)
        );
        let modern = answer(b"secret", &frame(&prefixed("sha256"))).unwrap();
        assert_eq!(
            modern,
            [b"{sha256}".as_slice(), &hex(MODERN_SHA256)].concat()
        );
        let sha384 = answer(b"secret", &frame(&prefixed("sha384"))).unwrap();
        assert_eq!(sha384, [b"{sha384}".as_slice(), &hex(SHA384)].concat());
    }

    #[test]
    fn verify_accepts_every_form_python_sends() {
        let key = b"secret";
        verify(key, &legacy_msg(), &hex(LEGACY_MD5)).unwrap();
        // A 3.11 client answers a 3.12 challenge with a raw HMAC-MD5 of it all.
        verify(key, &prefixed("sha256"), &hex(MODERN_MD5)).unwrap();
        let modern = [b"{sha256}".as_slice(), &hex(MODERN_SHA256)].concat();
        verify(key, &prefixed("sha256"), &modern).unwrap();
        // The prefix names the digest of the answer, whatever the challenge said.
        let md5_named = [b"{md5}".as_slice(), &hex(MODERN_MD5)].concat();
        verify(key, &prefixed("sha256"), &md5_named).unwrap();
    }

    #[test]
    fn verify_refuses_wrong_keys_lengths_and_digests() {
        let err = verify(b"other", &legacy_msg(), &hex(LEGACY_MD5)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert!(err.to_string().contains("the authkeys differ"), "{err}");
        let short = [b"{sha256}".as_slice(), &[0u8; 16]].concat();
        let err = verify(b"secret", &prefixed("sha256"), &short).unwrap_err();
        assert!(
            err.to_string().contains("is 16 bytes, expected 32"),
            "{err}"
        );
        let sha3 = [b"{sha3_256}".as_slice(), &[0u8; 32]].concat();
        let err = verify(b"secret", &prefixed("sha256"), &sha3).unwrap_err();
        assert!(err.to_string().contains("\"sha3_256\""), "{err}");
        let err = verify(b"secret", &prefixed("sha256"), b"{nope}123456789012345678").unwrap_err();
        assert!(err.to_string().contains("neither the legacy form"), "{err}");
    }

    #[test]
    fn answer_refuses_what_is_not_a_challenge() {
        let err = answer(b"k", br#"{"jsonrpc":"2.0"}"#).unwrap_err();
        assert!(
            err.to_string().contains("expected an authkey challenge"),
            "{err}"
        );
        let err = answer(b"k", &frame(&[1; 19])).unwrap_err();
        assert!(err.to_string().contains("too short: 19 bytes"), "{err}");
    }

    #[test]
    fn new_challenges_have_the_forms_and_differ() {
        let a = new_challenge(ChallengeDigest::Sha256).unwrap();
        assert_eq!(a.len(), 8 + 40);
        assert!(a.starts_with(b"{sha256}"));
        let b = new_challenge(ChallengeDigest::Sha256).unwrap();
        assert_ne!(a, b);
        assert_eq!(new_challenge(ChallengeDigest::Md5).unwrap().len(), 20);
    }

    #[test]
    fn verdicts() {
        check_verdict(WELCOME).unwrap();
        let err = check_verdict(FAILURE).unwrap_err();
        assert!(err.to_string().contains("#FAILURE#"), "{err}");
        assert!(check_verdict(b"?").is_err());
    }
}

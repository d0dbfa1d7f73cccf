//! An async connection cut into frames, as both servers and the async client
//! use it: a reader half and a writer half on ipckit's tokio transports. On a
//! server the bytes of a frame not yet whole are granted by the server's
//! [`Budget`] (see [`Metered`]).

use std::time::Duration;

use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ipckit::tokio::{Framed, MessageStream, OwnedReadHalf, OwnedWriteHalf};

use crate::auth::{self, ChallengeDigest, Handshake, handshake_timed_out};
use crate::budget::{Budget, Metered, refused};
use crate::conn::{
    FrameLimit, content_length_end, handshake_frame, limit_decoder, next_content_length,
    second_handle,
};
use crate::error::{Error, Result};
use crate::framing::{ContentLengthDecoder, Framing, encode_content_length};

pub(crate) enum Reader {
    Framed(Framed<Metered<OwnedReadHalf>>),
    ContentLength {
        half: Metered<OwnedReadHalf>,
        decoder: ContentLengthDecoder,
        buf: Vec<u8>,
    },
    Message(MessageStream),
}

pub(crate) enum Writer {
    Framed(Framed<OwnedWriteHalf>),
    ContentLength(OwnedWriteHalf),
    Message(MessageStream),
}

/// An I/O error of a receive, or the budget's refusal of it.
fn recv_error(context: &str, e: &std::io::Error) -> Error {
    refused(e, context).unwrap_or_else(|| Error::io(context, e))
}

impl Reader {
    /// The next frame; `None` at a clean end.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `recv` keeps the part of a frame it has read.
    pub(crate) async fn recv(&mut self, peer: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Reader::Framed(f) => match f.recv().await {
                Ok(frame) => {
                    f.get_ref().holds(0);
                    Ok(frame)
                }
                Err(e) => Err(recv_error(&format!("receive from {peer}"), &e)),
            },
            Reader::Message(m) => m
                .recv()
                .await
                .map_err(|e| Error::ipckit(&format!("receive from {peer}"), e)),
            Reader::ContentLength { half, decoder, buf } => loop {
                let context = || format!("receive from {peer}");
                if let Some(frame) = next_content_length(decoder, &context())? {
                    half.holds(decoder.buffered());
                    return Ok(Some(frame));
                }
                let n = half
                    .read(buf)
                    .await
                    .map_err(|e| recv_error(&context(), &e))?;
                if n == 0 {
                    return content_length_end(decoder, &context());
                }
                decoder.extend(&buf[..n]);
            },
        }
    }
}

impl FrameLimit for Reader {
    fn limit(&mut self, max: usize) -> ipckit::Result<()> {
        match self {
            Reader::Framed(f) => f.set_max_message_size(max),
            Reader::ContentLength { decoder, .. } => limit_decoder(decoder, max),
            Reader::Message(m) => m.set_max_message_size(max),
        }
    }
}

impl Writer {
    /// Sends one frame (whole, even if this future is dropped: see
    /// `ipckit::tokio::Framed`).
    pub(crate) async fn send(&mut self, msg: &[u8], peer: &str) -> Result<()> {
        let context = || format!("send to {peer}");
        match self {
            Writer::Framed(f) => f.send(msg).await.map_err(|e| Error::io(&context(), &e)),
            Writer::Message(m) => m.send(msg).await.map_err(|e| Error::ipckit(&context(), e)),
            Writer::ContentLength(half) => {
                let frame = encode_content_length(msg);
                half.write_all(&frame)
                    .await
                    .map_err(|e| Error::io(&context(), &e))?;
                half.flush().await.map_err(|e| Error::io(&context(), &e))
            }
        }
    }

    /// Bounds the sends of a message channel whose writes run on a thread
    /// (Windows pipes): a dropped send future does not end such a write, its
    /// deadline does.
    pub(crate) fn set_deadline(&mut self, timeout: Duration) {
        if let Writer::Message(m) = self {
            m.set_write_deadline(Some(std::time::Instant::now() + timeout));
        }
    }
}

/// An async connection.
pub(crate) type Conn = crate::conn::Halves<Reader, Writer>;

impl Conn {
    /// Frames a byte stream with `framing` ([`Framing::Message`] over a byte
    /// stream, `tcp:`, is what ipckit's message channels send there: the
    /// length-prefixed frames). A server meters its reads with `budget`.
    pub(crate) fn stream(
        stream: ipckit::tokio::Stream,
        framing: Framing,
        max: usize,
        budget: Option<&std::sync::Arc<Budget>>,
    ) -> Result<Conn> {
        let peer = stream.peer_addr().to_string();
        let (r, w) = stream.into_split();
        let r = Metered::new(r, budget);
        let (reader, writer) = match framing {
            Framing::ContentLength => (
                Reader::ContentLength {
                    half: r,
                    decoder: ContentLengthDecoder::new(max),
                    buf: vec![0; 64 * 1024],
                },
                Writer::ContentLength(w),
            ),
            _ => (
                Reader::Framed(Framed::new(r)),
                Writer::Framed(Framed::new(w)),
            ),
        };
        Conn::new(reader, writer, peer, max)
    }

    /// A message channel: one message, one JSON text. A message arrives
    /// whole from the OS, so nothing is held unfinished.
    pub(crate) fn message(channel: MessageStream, max: usize) -> Result<Conn> {
        let peer = channel.peer_addr().to_string();
        let second = second_handle(channel.try_clone(), &peer)?;
        Conn::new(Reader::Message(channel), Writer::Message(second), peer, max)
    }

    async fn recv_handshake(&mut self) -> Result<Vec<u8>> {
        handshake_frame(self.reader.recv(&self.peer).await)
    }

    async fn deliver(&mut self, key: &[u8], digest: ChallengeDigest) -> Result<()> {
        let msg = auth::new_challenge(digest)?;
        let peer = self.peer.clone();
        self.writer
            .send(&[auth::CHALLENGE, &msg].concat(), &peer)
            .await?;
        let response = self.recv_handshake().await?;
        match auth::verify(key, &msg, &response) {
            Ok(()) => self.writer.send(auth::WELCOME, &peer).await,
            Err(e) => {
                let _ = self.writer.send(auth::FAILURE, &peer).await;
                Err(e)
            }
        }
    }

    async fn answer(&mut self, key: &[u8]) -> Result<()> {
        let challenge = self.recv_handshake().await?;
        let peer = self.peer.clone();
        self.writer
            .send(&auth::answer(key, &challenge)?, &peer)
            .await?;
        auth::check_verdict(&self.recv_handshake().await?)
    }

    /// Runs the authkey handshake `hs`, given up once its timeout has passed.
    pub(crate) async fn handshake(&mut self, hs: Handshake<'_>) -> Result<()> {
        self.begin_handshake()?;
        let (key, digest) = (hs.key, hs.digest);
        let steps = async {
            if hs.accepting {
                self.deliver(key, digest).await?;
                self.answer(key).await
            } else {
                self.answer(key).await?;
                self.deliver(key, digest).await
            }
        };
        let result = ::tokio::time::timeout(hs.timeout, steps)
            .await
            .unwrap_or_else(|_| Err(handshake_timed_out(hs.timeout)));
        self.end_handshake(result)
    }
}

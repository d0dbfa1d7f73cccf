//! The frame codec (`sys::plain::frame`: Python's `multiprocessing.connection`
//! frames) as the message layer uses it, the rule for a framed stream that
//! fell out of step, and the state of a `Framed` on either face.

use std::fmt;
use std::io;

use crate::error::{Error, ErrorKind, breaks_channel, lift_fault};
use crate::limits::{DEFAULT_MAX_MESSAGE_SIZE, check_max_message_size};
pub(crate) use crate::plain::frame::{FrameReader, FrameWriter};

/// What both faces' `Framed<S>` (each keeps `inner: S` and `frames:
/// FrameState`) have the same way: its `Debug`, `new`, the size limit and
/// the access to the stream.
macro_rules! framed_face {
    () => {
        impl<S> ::std::fmt::Debug for Framed<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.frames.fmt(f)
            }
        }

        impl<S> Framed<S> {
            /// Frames messages on `inner`, with the default maximum message
            /// size (64 MiB).
            pub fn new(inner: S) -> Framed<S> {
                Framed {
                    inner,
                    frames: crate::message::frame::FrameState::default(),
                }
            }

            /// The largest incoming message accepted.
            pub fn max_message_size(&self) -> usize {
                self.frames.max
            }

            /// Sets the largest incoming message accepted.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for 0.
            pub fn set_max_message_size(&mut self, bytes: usize) -> crate::Result<()> {
                self.frames.set_max(bytes)
            }

            /// The stream.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The stream, mutably (set its timeouts, say). Reading or writing
            /// it directly puts the framing out of step.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// The stream back. A frame that was half read or half written is
            /// dropped.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}
pub(crate) use framed_face;

/// What a `Framed` (blocking or tokio) keeps beside its stream: the frame
/// each direction is in the middle of, the maximum incoming message, and
/// why it fell out of step, once it did.
pub(crate) struct FrameState {
    pub(crate) reader: FrameReader,
    pub(crate) writer: FrameWriter,
    pub(crate) max: usize,
    broken: Option<String>,
}

impl Default for FrameState {
    fn default() -> Self {
        FrameState {
            reader: FrameReader::default(),
            writer: FrameWriter::default(),
            max: DEFAULT_MAX_MESSAGE_SIZE,
            broken: None,
        }
    }
}

/// The `Debug` of a `Framed` of either face.
impl fmt::Debug for FrameState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framed")
            .field("max_message_size", &self.max)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl FrameState {
    /// `set_max_message_size`: refuses 0.
    pub(crate) fn set_max(&mut self, bytes: usize) -> crate::Result<()> {
        check_max_message_size(bytes)?;
        self.max = bytes;
        Ok(())
    }

    /// `Ok` while in step (see [`check_in_step`]).
    pub(crate) fn check(&self) -> io::Result<()> {
        check_in_step(self.broken.as_deref())
    }

    /// The error of a receive, with the stream marked out of step where the
    /// error leaves it so.
    pub(crate) fn failed(&mut self, e: io::Error) -> io::Error {
        let e = lift_fault(e);
        if breaks_channel(&e) {
            self.broken = Some(e.to_string());
        }
        e
    }
}

/// `Ok` while a framed stream is in step; once a frame was cut (`broken` says
/// why), every call fails with `Disconnected`. Shared by the blocking and the
/// async `Framed`.
pub(crate) fn check_in_step(broken: Option<&str>) -> io::Result<()> {
    match broken {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::Disconnected,
            format!("the framed stream is out of step and was closed: {why}"),
        )
        .into()),
    }
}

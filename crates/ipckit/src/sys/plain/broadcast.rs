//! The outcome of a broadcast, as plain data: what `sys` returns and
//! `ipckit::mailslot` re-exports.

/// The outcome of one [`MailslotSender::broadcast`](crate::MailslotSender::broadcast): which members received
/// the message and which did not.
///
/// Every live member either received the message (`delivered`) or was
/// skipped (`full`, named in `full_members`): a skipped member never gets this
/// message, as a broadcast does not wait and does not retry. A sender that
/// must not lose messages checks `full` after each broadcast (`ipckit send
/// --broadcast` fails, exit 1, when any member was skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// How many members received the message.
    pub delivered: usize,
    /// How many dead members (receivers that exited without leaving) were found
    /// and removed from the group.
    pub dead: usize,
    /// How many live members were skipped: their queue was full (they are not
    /// reading, or not fast enough), so they lost this message. Unix only,
    /// where a datagram queue is bounded and a broadcast never waits for one
    /// member; always 0 on Windows, whose mailslots queue without a bound.
    #[doc(alias = "skipped")]
    pub full: usize,
    /// The members counted in `full`, by their name in the group: `PID-N`,
    /// the id of the member's process, then a number (as
    /// [`MailslotReceiver::join`](crate::MailslotReceiver::join) names them).
    pub full_members: Vec<String>,
}

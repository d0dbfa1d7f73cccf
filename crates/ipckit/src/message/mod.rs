//! Message channels: whole messages, boundaries kept.

pub(crate) mod frame;

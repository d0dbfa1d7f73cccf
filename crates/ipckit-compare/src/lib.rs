//! Nothing but a home for `benches/interprocess.rs`: ipckit's stream against the
//! `interprocess` crate's local sockets (`cargo bench -p ipckit-compare`).

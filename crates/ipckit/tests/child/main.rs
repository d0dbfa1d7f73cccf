//! Child-process channels with real processes, one module per feature: this
//! test program re-run as the child (`child_process_entry` with
//! `IPCKIT_TEST_ROLE` set, playing one of the [`roles`]), Node children and a
//! Node parent, and Python writing raw lines.

#[path = "../util/mod.rs"]
mod util;

mod roles;
mod support;

mod ending;
mod inherit;
mod messages;
#[cfg(unix)]
mod node_and_python;
#[cfg(windows)]
mod node_windows;

/// Not a test: the entry point of this program when a test re-runs it as a
/// child (`IPCKIT_TEST_ROLE` set, with `--ignored`). Without the variable it
/// does nothing. It stays at the top so that its name is the one
/// [`support::CHILD_ARGS`] runs.
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_process_entry() {
    if let Ok(role) = std::env::var(support::ROLE) {
        let code = roles::run(&role);
        std::process::exit(code);
    }
}

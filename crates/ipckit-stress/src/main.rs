//! ipckit's reliability suite (issue 16): load, faults, a hostile local user and
//! malformed input, run against the real `ipckit` binary and the library.
//!
//! `ipckit-stress [--list] [FILTER...]`: runs every scenario whose name holds
//! one of the FILTERs (all without one), prints one line of figures per
//! scenario and a last line `N passed, N failed`, and exits 1 if any failed.
//! See docs/RELIABILITY.md.
//!
//! The `ipckit` binary is `$IPCKIT_BIN`, else the one next to this program
//! (`cargo build --release -p ipckit-cli` first). On Windows (under Wine) only
//! load and faults run, scaled down, over named pipes, tcp and mailslots. Every scenario has a
//! deadline; a watchdog ends the whole run after `$IPCKIT_STRESS_BUDGET`
//! seconds (default 330). Only processes this run started are ever killed.

/// `println!` for the suite's report: a reader that closed our stdout (`|
/// head`) ends the run quietly, as `ipckit` does, instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[cfg(unix)]
mod badinput;
mod faults;
#[cfg(unix)]
mod handshake;
#[cfg(unix)]
mod limits;
mod load;
#[cfg(unix)]
mod rpc_faults;
mod scale;
#[cfg(unix)]
mod security;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    run::main()
}

mod run {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::util::{self, Ctx, Outcome, lock};

    /// One scenario: a name to list and filter by, its own deadline, the
    /// issue-16 fix it depends on (printed when it fails), and its body.
    pub(crate) struct Scenario {
        pub(crate) name: String,
        pub(crate) deadline: Duration,
        pub(crate) needs: Option<&'static str>,
        pub(crate) run: Arc<dyn Fn(&Ctx) -> Outcome + Send + Sync>,
    }

    impl Scenario {
        pub(crate) fn new(
            name: impl Into<String>,
            deadline_secs: u64,
            needs: Option<&'static str>,
            run: impl Fn(&Ctx) -> Outcome + Send + Sync + 'static,
        ) -> Scenario {
            Scenario {
                name: name.into(),
                deadline: Duration::from_secs(deadline_secs),
                needs,
                run: Arc::new(run),
            }
        }
    }

    /// The scenario running now, for the watchdog's message.
    static CURRENT: Mutex<String> = Mutex::new(String::new());
    /// The scenarios passed and failed so far (the watchdog's last line too).
    static COUNTS: Mutex<(u32, u32)> = Mutex::new((0, 0));

    /// Set in the process that runs the scenarios: this run's directory.
    const DIR_VAR: &str = "IPCKIT_STRESS_DIR";

    pub(crate) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            say!(
                "usage: ipckit-stress [--list] [FILTER...]\n\
                 Runs the scenarios whose name holds a FILTER (all without one).\n\
                 env: IPCKIT_BIN (the ipckit binary), IPCKIT_STRESS_BUDGET (seconds, default 330)"
            );
            return ExitCode::SUCCESS;
        }
        let all = scenarios();
        if args.iter().any(|a| a == "--list") {
            for s in &all {
                say!("{}", s.name);
            }
            return ExitCode::SUCCESS;
        }
        if let Some(bad) = args.iter().find(|a| a.starts_with('-')) {
            eprintln!("ipckit-stress: unknown option {bad} (see --help)");
            return ExitCode::from(2);
        }
        let chosen: Vec<Scenario> = all
            .into_iter()
            .filter(|s| args.is_empty() || args.iter().any(|f| s.name.contains(f.as_str())))
            .collect();
        if chosen.is_empty() {
            eprintln!("ipckit-stress: no scenario matches {args:?} (see --list)");
            return ExitCode::from(2);
        }
        if cfg!(windows) {
            // No runtime directory to make private (pipe names are global) and
            // no other user to let in: run here, with the binary where it is.
            return match find_ipckit() {
                Ok(ipckit) => {
                    let dir = std::env::temp_dir();
                    run_all(
                        Ctx {
                            ipckit,
                            xdg: dir.clone(),
                            dir,
                        },
                        chosen,
                    )
                }
                Err(e) => {
                    eprintln!("ipckit-stress: {e}");
                    ExitCode::from(2)
                }
            };
        }
        match std::env::var_os(DIR_VAR) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                let ctx = Ctx {
                    ipckit: dir.join("ipckit"),
                    xdg: dir.join("xdg"),
                    dir,
                };
                run_all(ctx, chosen)
            }
            None => supervise(),
        }
    }

    /// Makes this run's directory and copies `ipckit` into it, then runs the
    /// scenarios in a child (this same program) whose `XDG_RUNTIME_DIR` is
    /// private to the run, so that `pipe:NAME` on both ends lands there;
    /// removes the directory afterwards.
    #[cfg(unix)]
    fn supervise() -> ExitCode {
        use std::os::unix::fs::PermissionsExt;
        let ipckit = match find_ipckit() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ipckit-stress: {e}");
                return ExitCode::from(2);
            }
        };
        let dir = PathBuf::from(format!("/tmp/ipckit-stress-{}", std::process::id()));
        let xdg = dir.join("xdg");
        let setup = util::make_dir(&dir, 0o755, None)
            .and_then(|()| util::make_dir(&xdg, 0o755, None))
            .and_then(|()| {
                let copy = dir.join("ipckit");
                std::fs::copy(&ipckit, &copy)
                    .map_err(|e| format!("copy {} to {}: {e}", ipckit.display(), copy.display()))?;
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("chmod {}: {e}", copy.display()))
            });
        if let Err(e) = setup {
            eprintln!("ipckit-stress: setting up {}: {e}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            return ExitCode::from(2);
        }
        let status = std::env::current_exe().and_then(|me| {
            std::process::Command::new(me)
                .args(std::env::args_os().skip(1))
                .env(DIR_VAR, &dir)
                .env("XDG_RUNTIME_DIR", &xdg)
                .status()
        });
        let _ = std::fs::remove_dir_all(&dir);
        match status {
            Ok(st) if st.success() => ExitCode::SUCCESS,
            Ok(st) => {
                if st.code().is_none() {
                    eprintln!("ipckit-stress: the run ended by {st} (a crash)");
                }
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("ipckit-stress: cannot run the scenarios: {e}");
                ExitCode::FAILURE
            }
        }
    }

    #[cfg(not(unix))]
    fn supervise() -> ExitCode {
        unreachable!("Windows runs the scenarios in this process")
    }

    /// `$IPCKIT_BIN`, else `ipckit` next to this program.
    fn find_ipckit() -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os("IPCKIT_BIN") {
            return Ok(PathBuf::from(p));
        }
        let me = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
        let p = me.with_file_name(format!("ipckit{}", std::env::consts::EXE_SUFFIX));
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "no ipckit binary at {}: run `cargo build --release -p ipckit-cli` first, or set IPCKIT_BIN",
                p.display()
            ))
        }
    }

    fn run_all(ctx: Ctx, chosen: Vec<Scenario>) -> ExitCode {
        let ctx = Arc::new(ctx);
        #[cfg(unix)]
        raise_fd_limit();
        watchdog();
        let mut skipped = 0;
        let started = Instant::now();
        for s in chosen {
            *lock(&CURRENT) = s.name.clone();
            let t = Instant::now();
            let (c, run) = (Arc::clone(&ctx), Arc::clone(&s.run));
            let outcome = match util::bounded(s.deadline, move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&c)));
                r.unwrap_or_else(|p| {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("crashed (panic: {why})"))
                })
            }) {
                Some(o) => o,
                None => {
                    let n = util::kill_all_children();
                    Err(format!(
                        "hang: no result within its deadline of {}s (killed its {n} processes)",
                        s.deadline.as_secs()
                    ))
                }
            };
            let took = util::secs(t.elapsed());
            match outcome {
                Ok(fig) if fig.starts_with("skipped") => {
                    skipped += 1;
                    say!("SKIP {:<34} {fig}", s.name);
                }
                Ok(fig) => {
                    lock(&COUNTS).0 += 1;
                    say!("PASS {:<34} {fig} time={took}", s.name);
                }
                Err(why) => {
                    lock(&COUNTS).1 += 1;
                    let needs = s
                        .needs
                        .map(|n| format!(" [needs: {n}]"))
                        .unwrap_or_default();
                    say!("FAIL {:<34} {why} time={took}{needs}", s.name);
                }
            }
        }
        if let Err(left) = leftovers(&ctx.xdg) {
            lock(&COUNTS).1 += 1;
            say!("FAIL {:<34} {left}", "leftovers");
        }
        let (passed, failed) = *lock(&COUNTS);
        say!(
            "total time {}{}",
            util::secs(started.elapsed()),
            if skipped > 0 {
                format!(", {skipped} skipped")
            } else {
                String::new()
            }
        );
        say!("{passed} passed, {failed} failed");
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// An error if a socket file or channel region of this run is left.
    fn leftovers(xdg: &Path) -> Result<(), String> {
        let mut left: Vec<String> = std::fs::read_dir(xdg.join("ipckit"))
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        left.extend(util::shm_left(&format!(
            "ipckit-stress-{}-",
            std::process::id()
        )));
        if left.is_empty() {
            return Ok(());
        }
        left.sort();
        Err(format!(
            "the run left {} endpoints behind: {}",
            left.len(),
            left.join(" ")
        ))
    }

    /// Thousands of clients need more descriptors than the usual soft limit
    /// (`scale/*`: 10,000 clients here, as many in the server, which inherits
    /// the limit): 65536 where the hard limit allows it or can be raised (as
    /// root), else the hard limit.
    #[cfg(unix)]
    fn raise_fd_limit() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        const WANT: u64 = 65536;
        let lim = getrlimit(Resource::Nofile);
        if lim.current.is_none_or(|c| c >= WANT) {
            return;
        }
        let raised = Rlimit {
            current: Some(WANT),
            maximum: lim.maximum.map(|m| m.max(WANT)),
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            let hard = lim.maximum.unwrap_or(WANT).min(WANT);
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: lim.maximum,
                },
            );
        }
    }

    /// Ends the whole run when it exceeds its budget, killing what it started.
    fn watchdog() {
        let budget = std::env::var("IPCKIT_STRESS_BUDGET")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(330);
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(budget));
            let n = util::kill_all_children();
            say!(
                "FAIL watchdog: the run exceeded its budget of {budget}s during scenario {}; killed its {n} child processes",
                lock(&CURRENT)
            );
            let (passed, failed) = *lock(&COUNTS);
            say!("{passed} passed, {} failed", failed + 1);
            std::process::exit(1);
        });
    }

    fn scenarios() -> Vec<Scenario> {
        let mut all = crate::load::scenarios();
        all.extend(crate::faults::scenarios());
        #[cfg(unix)]
        {
            all.extend(crate::limits::scenarios());
            all.extend(crate::rpc_faults::scenarios());
            all.extend(crate::security::scenarios());
            all.extend(crate::badinput::scenarios());
            all.extend(crate::handshake::scenarios());
        }
        all.extend(crate::scale::scenarios());
        all
    }
}

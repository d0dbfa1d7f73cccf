//! security: another local user, created for the run (`useradd`) and acted by
//! `setpriv`, is refused on every kind of endpoint; a squatted or symlinked
//! runtime directory is refused on the server and the client side; a
//! world-writable shared-memory object is refused by a client.
//!
//! Two users: `ipckit-stress` (the other user, the attacker) and
//! `ipckit-stress-v` (the victim, whose fallback runtime directory
//! `/tmp/ipckit-UID` belongs to nobody else, so squatting it disturbs no one).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::load::{Kind, fresh_addr, start_server};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Proc};

const CLIENT_DIR: &str =
    "client-side check of the runtime directory (owner, mode 0700, no symlink)";
const SHM_OWNER: &str = "client-side check of a shared-memory object's owner and mode";

const ATTACKER: &str = "ipckit-stress";
const VICTIM: &str = "ipckit-stress-v";
const SECRET: &str = "secret-of-the-victim";

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("security/other-user", 60, None, other_user),
        Scenario::new("security/squatted-dir/server", 60, None, squatted_server),
        Scenario::new(
            "security/squatted-dir/client",
            60,
            Some(CLIENT_DIR),
            squatted_client,
        ),
        Scenario::new("security/symlinked-dir", 60, Some(CLIENT_DIR), symlinked),
        Scenario::new(
            "security/shm-world-writable",
            60,
            Some(SHM_OWNER),
            shm_world_writable,
        ),
    ]
}

/// A user of this run: name, uid, gid.
#[derive(Debug, Clone)]
struct User {
    name: &'static str,
    uid: u32,
    gid: u32,
}

fn id(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user `name`, created (a system user without a home) if missing.
fn user(name: &'static str) -> Result<User, String> {
    if id("-u", name).is_none() {
        let st = Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/usr/sbin/nologin", name])
            .status()
            .map_err(|e| format!("useradd {name}: {e}"))?;
        if !st.success() {
            return Err(format!("useradd {name}: {st}"));
        }
    }
    Ok(User {
        name,
        uid: id("-u", name).ok_or(format!("id -u {name}"))?,
        gid: id("-g", name).ok_or(format!("id -g {name}"))?,
    })
}

/// Both users, or why the scenario cannot run (not root).
fn users() -> Result<(User, User), String> {
    Ok((user(ATTACKER)?, user(VICTIM)?))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

const SKIP: &str = "skipped: creating users and acting as them needs root";

/// `ipckit ARGS` run as `u` by `setpriv`, `XDG_RUNTIME_DIR` unset (the
/// fallback `/tmp/ipckit-UID` is then its runtime directory).
fn as_user(ctx: &Ctx, u: &User, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .args(["--clear-groups", "--"])
        .arg(&ctx.ipckit)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env("HOME", "/")
        .stdin(Stdio::null())
        .current_dir("/");
    cmd
}

/// Runs a client to its end (10 s at most) with `stdin`: exit code (`None`
/// if it was still running and was killed), stdout, stderr.
fn run_client(mut cmd: Command, stdin: &str) -> Result<(Option<i32>, String, String), String> {
    cmd.stdin(Stdio::piped());
    let mut p = Proc::spawn(&mut cmd, false)?;
    if let Some(mut i) = p.stdin() {
        let _ = i.write_all(stdin.as_bytes());
    }
    // Still running after 10 s: it is talking to somebody (not refused).
    let code = match p.exited_within(Duration::from_secs(10)) {
        Some(st) => st.code(),
        None => {
            p.kill();
            None
        }
    };
    Ok((
        code,
        p.stdout_final(Duration::from_secs(2)),
        p.stderr_final(Duration::from_secs(2)),
    ))
}

/// An error unless the client failed (non-zero exit) without getting the
/// secret back, and (if `names` is given) its message names that path.
fn refused(
    what: &str,
    got: (Option<i32>, String, String),
    names: Option<&Path>,
) -> Result<String, String> {
    let (code, out, err) = got;
    if code.is_none() || code == Some(0) || out.contains(SECRET) {
        return Err(format!(
            "{what}: not refused ({}{}): {err}",
            code.map_or("still connected after 10 s".into(), |c| format!("exit {c}")),
            if out.contains(SECRET) {
                ", the secret came back"
            } else {
                ""
            }
        ));
    }
    if let Some(p) = names
        && !err.contains(&p.display().to_string())
    {
        return Err(format!(
            "{what}: refused, but the message does not name {}: {err}",
            p.display()
        ));
    }
    Ok(format!("{what}:exit{}", code.unwrap_or(-1)))
}

/// A root-owned endpoint of each kind (this run's runtime directory, as the
/// library makes it: a 0700 directory, 0600 sockets and regions) is refused
/// to the other user, who addresses it by its full path.
fn other_user(ctx: &Ctx) -> Outcome {
    if !is_root() {
        return Ok(SKIP.into());
    }
    let (attacker, _) = users()?;
    let mut done = Vec::new();
    let dir = ctx.xdg.join("ipckit");
    for kind in [Kind::Pipe, Kind::Message, Kind::Mailslot, Kind::Shm] {
        let (_server, addr) = start_server(ctx, kind, &fresh_addr(ctx, kind))?;
        let name = addr.split_once(':').map_or("", |(_, n)| n);
        let path = |ext: &str| format!("unix:{}", dir.join(format!("{name}.{ext}")).display());
        let (target, args): (String, Vec<&str>) = match kind {
            Kind::Message => (path("sock"), vec!["connect", "--message", "--count", "1"]),
            Kind::Mailslot => (path("dgram"), vec!["send"]),
            Kind::Shm => (addr.clone(), vec!["connect"]),
            _ => (path("sock"), vec!["connect"]),
        };
        let mut all = args.clone();
        all.push(&target);
        if kind == Kind::Mailslot {
            all.push(SECRET);
        }
        let got = run_client(as_user(ctx, &attacker, &all), &format!("{SECRET}\n"))?;
        done.push(refused(kind.name(), got, None)?);
    }
    // A plain region and the RPC server.
    let region = util::unique("region");
    let created = ctx.ipckit(&["shm", "create", &region, "4096"]).status();
    if !created.is_ok_and(|s| s.success()) {
        return Err(format!("ipckit shm create {region} failed"));
    }
    let got = run_client(as_user(ctx, &attacker, &["shm", "read", &region]), "");
    let _ = std::fs::remove_file(format!("/dev/shm/{region}"));
    done.push(refused("shm-region", got?, None)?);
    let (_demo, addr) = crate::badinput::start_demo(ctx, ipckit_rpc::Framing::LengthPrefix, None)?;
    let name = addr.trim_start_matches("pipe:");
    let target = format!("unix:{}", ctx.sock_path(name).display());
    let params = format!("[\"{SECRET}\"]");
    let got = run_client(
        as_user(ctx, &attacker, &["call", &target, "echo", &params]),
        "",
    )?;
    done.push(refused("rpc", got, None)?);
    Ok(format!(
        "refused={} ({}) abstract+tcp: not protected by design (docs/SECURITY.md)",
        done.len(),
        done.join(" ")
    ))
}

/// The victim's fallback runtime directory, emptied before and after.
struct VictimDir(PathBuf);

impl VictimDir {
    fn new(victim: &User) -> VictimDir {
        let d = VictimDir(PathBuf::from(format!("/tmp/ipckit-{}", victim.uid)));
        d.clear();
        d
    }

    /// The victim's directory, created by the attacker with mode 0755.
    fn squatted(attacker: &User, victim: &User) -> Result<VictimDir, String> {
        let d = VictimDir::new(victim);
        util::make_dir(&d.0, 0o755, Some((attacker.uid, attacker.gid)))?;
        Ok(d)
    }

    fn clear(&self) {
        match std::fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&self.0);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&self.0);
            }
            Err(_) => {}
        }
    }
}

impl Drop for VictimDir {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Makes every file in `dir` mode 0666 (what a squatter does to be reached).
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o666));
        }
    }
}

/// Starts `ipckit ARGS` as `u` and waits for its `-v` line.
fn serve_as(ctx: &Ctx, u: &User, args: &[&str], ready: &str) -> Result<Proc, String> {
    let mut p = Proc::spawn(&mut as_user(ctx, u, args), false)?;
    if p.stderr_line(ready, Duration::from_secs(10)).is_none() {
        return Err(format!(
            "{} {args:?} did not start (exit {:?}): {}",
            u.name,
            p.exited_within(Duration::ZERO),
            p.stderr_text()
        ));
    }
    Ok(p)
}

/// As `u`, the four servers the victim's clients aim at, in `dir`:
/// `listen --echo` (`sq.sock`), `listen --message --echo` (`sqm.sock`),
/// `serve-demo` (`rpc.sock`) and `recv` (`ms.dgram`).
fn serve_four(ctx: &Ctx, u: &User, dir: &Path) -> Result<Vec<Proc>, String> {
    let at = |f: &str| format!("unix:{}/{f}", dir.display());
    [
        (vec!["listen", "--echo"], "sq.sock", "listening on"),
        (
            vec!["listen", "--message", "--echo"],
            "sqm.sock",
            "listening on",
        ),
        (vec!["serve-demo"], "rpc.sock", "listening on"),
        (vec!["recv"], "ms.dgram", "receiving on"),
    ]
    .into_iter()
    .map(|(args, file, ready)| {
        let path = at(file);
        let mut all = vec!["-v"];
        all.extend(args);
        all.push(&path);
        serve_as(ctx, u, &all, ready)
    })
    .collect()
}

/// The other user squats the victim's `/tmp/ipckit-UID` (mode 0755, with a
/// live socket of theirs in it); the victim's servers refuse to bind there.
fn squatted_server(ctx: &Ctx) -> Outcome {
    if !is_root() {
        return Ok(SKIP.into());
    }
    let (attacker, victim) = users()?;
    let dir = VictimDir::squatted(&attacker, &victim)?;
    let live = format!("unix:{}/live.sock", dir.0.display());
    let _squatter = serve_as(
        ctx,
        &attacker,
        &["-v", "listen", "--echo", &live],
        "listening on",
    )?;
    let mut done = Vec::new();
    for (what, args) in [
        ("listen", vec!["listen", "--echo", "pipe:srv"]),
        (
            "listen-message",
            vec!["listen", "--message", "--echo", "pipe:srv"],
        ),
        ("recv", vec!["recv", "mailslot:srv"]),
        ("serve-demo", vec!["serve-demo", "pipe:srv"]),
    ] {
        let got = run_client(as_user(ctx, &victim, &args), "")?;
        done.push(refused(what, got, Some(&dir.0))?);
    }
    Ok(format!(
        "squatted={} mode=0755 refused={} ({})",
        dir.0.display(),
        done.len(),
        done.join(" ")
    ))
}

/// The other user squats the victim's `/tmp/ipckit-UID` and serves there
/// (sockets made 0666); the victim's clients must refuse to talk to them.
fn squatted_client(ctx: &Ctx) -> Outcome {
    if !is_root() {
        return Ok(SKIP.into());
    }
    let (attacker, victim) = users()?;
    let dir = VictimDir::squatted(&attacker, &victim)?;
    let _servers = serve_four(ctx, &attacker, &dir.0)?;
    open_up(&dir.0);
    victim_clients(ctx, &victim, &dir.0, "squatted")
}

/// The victim's clients on `pipe:sq`, `pipe:sqm`, `pipe:rpc` and
/// `mailslot:ms`: each must fail, get no secret back, and name `dir`.
fn victim_clients(ctx: &Ctx, victim: &User, dir: &Path, label: &str) -> Outcome {
    let params = format!("[\"{SECRET}\"]");
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (what, args) in [
        ("connect", vec!["connect", "pipe:sq"]),
        (
            "connect-message",
            vec!["connect", "--message", "--count", "1", "pipe:sqm"],
        ),
        ("call", vec!["call", "pipe:rpc", "echo", &params]),
        ("send", vec!["send", "mailslot:ms", SECRET]),
    ] {
        let got = run_client(as_user(ctx, victim, &args), &format!("{SECRET}\n"))?;
        match refused(what, got, Some(dir)) {
            Ok(s) => done.push(s),
            Err(e) => failures.push(e),
        }
    }
    let figures = format!(
        "{label}={} refused={}/4 ({})",
        dir.display(),
        done.len(),
        done.join(" ")
    );
    if failures.is_empty() {
        Ok(figures)
    } else {
        Err(format!("{figures}; {}", failures.join("; ")))
    }
}

/// The victim's `/tmp/ipckit-UID` is a symlink (to a 0700 directory of the
/// victim's, with the victim's own live sockets): servers and clients refuse it.
fn symlinked(ctx: &Ctx) -> Outcome {
    if !is_root() {
        return Ok(SKIP.into());
    }
    let (_, victim) = users()?;
    let dir = VictimDir::new(&victim);
    let real = ctx.dir.join("victim-real");
    let _ = std::fs::remove_dir_all(&real);
    util::make_dir(&real, 0o700, Some((victim.uid, victim.gid)))?;
    std::os::unix::fs::symlink(&real, &dir.0)
        .map_err(|e| format!("symlink {}: {e}", dir.0.display()))?;
    std::os::unix::fs::lchown(&dir.0, Some(victim.uid), Some(victim.gid))
        .map_err(|e| e.to_string())?;
    let _servers = serve_four(ctx, &victim, &real)?;
    let server = run_client(as_user(ctx, &victim, &["listen", "--echo", "pipe:srv"]), "")?;
    let server = refused("listen", server, Some(&dir.0));
    let clients = victim_clients(ctx, &victim, &dir.0, "symlink");
    let _ = std::fs::remove_dir_all(&real);
    match (server, clients) {
        (Ok(s), Ok(c)) => Ok(format!("{c} {s}")),
        (s, c) => Err(format!(
            "{}; {}",
            s.unwrap_or_else(|e| e),
            c.unwrap_or_else(|e| e)
        )),
    }
}

/// A region and a channel made world-writable (by the other user, and by the
/// victim itself): a client refuses each.
fn shm_world_writable(ctx: &Ctx) -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        return Ok(SKIP.into());
    }
    let (attacker, victim) = users()?;
    let mut files = Vec::new();
    let mut results = Vec::new();
    let world = |name: &str| {
        std::fs::set_permissions(
            format!("/dev/shm/{name}"),
            std::fs::Permissions::from_mode(0o666),
        )
        .map_err(|e| format!("chmod /dev/shm/{name}: {e}"))
    };
    // A region of the other user's, and one of the victim's own.
    for (label, owner) in [("others-region", &attacker), ("own-region", &victim)] {
        let name = util::unique("ww");
        let st = as_user(ctx, owner, &["shm", "create", &name, "4096"]).status();
        if !st.is_ok_and(|s| s.success()) {
            return Err(format!("{} could not create region {name}", owner.name));
        }
        files.push(name.clone());
        world(&name)?;
        let got = run_client(
            as_user(ctx, &victim, &["shm", "read", "--len", "16", &name]),
            "",
        )?;
        results.push(refused(label, got, None));
    }
    // A channel of the other user's: `listen shm:` makes a region per client,
    // named at random when the client arrives, so there is no region to make
    // world-writable beforehand; what is left to check is that `shm:NAME`
    // never reaches another user's listener of that name.
    let name = util::unique("wwc");
    let addr = format!("shm:{name}");
    let server = serve_as(
        ctx,
        &attacker,
        &["-v", "listen", "--echo", &addr],
        "listening on",
    )?;
    let got = run_client(
        as_user(ctx, &victim, &["connect", &addr]),
        &format!("{SECRET}\n"),
    )?;
    results.push(refused("others-channel", got, None));
    drop(server);
    files.push(name);
    for f in &files {
        let _ = std::fs::remove_file(format!("/dev/shm/{f}"));
    }
    let ok: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let bad: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    let figures = format!(
        "world-writable=2 other-user-channel=1 refused={} ({})",
        ok.len(),
        ok.join(" ")
    );
    if bad.is_empty() {
        Ok(figures)
    } else {
        Err(format!("{figures}; {}", bad.join("; ")))
    }
}

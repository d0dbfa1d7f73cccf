//! The service registry (`ipckit::registry`, `service:NAME`) with real
//! processes: register, look up and unregister; owners killed or their pid
//! reused; a wait woken by a later registration (measured); many instances;
//! records that are not the user's or cannot be read; a squatted or symlinked
//! registry directory.
//!
//! Every scenario runs in a child of this program whose registry is a fresh
//! private directory (`XDG_RUNTIME_DIR` on Unix, `%LOCALAPPDATA%` on Windows),
//! so scenarios running at once, or the user's own services, cannot disturb
//! each other; the registering processes are further children of it.

mod util;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ipckit::ErrorKind;
use ipckit::registry::{self, Event, Kind, Registration, State};
use util::registry::{echo5, isolated, later, round_trip5, run_scenario};
use util::{Kid, child_role, slow_factor, this_test_as_child, unique_name};

/// A child that registers `name` at `addr` (kind stream, metadata
/// `instance=<pid>`), says `REGISTERED <record path>`, and unregisters when
/// its stdin ends.
fn registrant(name: &str, addr: &str) -> Kid {
    let mut kid = Kid::spawn(this_test_as_child(
        &[],
        "child",
        "register",
        &format!("{name} {addr}"),
    ));
    let line = kid.line();
    assert!(line.starts_with("REGISTERED "), "{line}");
    kid
}

/// The entry point of this program's children.
#[test]
#[ignore = "run by the other tests as a child process"]
fn child() {
    let Some((role, arg)) = child_role() else {
        return;
    };
    match role.as_str() {
        "scenario" => run_scenario(
            &arg,
            &[
                ("register_lookup_unregister", register_lookup_unregister),
                ("killed_owner", killed_owner),
                ("pid_reuse", pid_reuse),
                ("wait_woken", wait_woken),
                ("many_instances", many_instances),
                ("service_address", service_address),
                ("probe", probe),
                ("foreign_record", foreign_record),
                ("corrupt_record", corrupt_record),
                ("squatted_dir", squatted_dir),
                ("watch", watch),
                ("tokio_wait", tokio_wait),
            ],
        ),
        "register" => {
            let (name, addr) = arg.split_once(' ').unwrap();
            let reg = Registration::builder(name, addr, Kind::Stream)
                .meta("instance", std::process::id().to_string())
                .register()
                .unwrap();
            println!("REGISTERED {}", reg.service().record_path().display());
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_line(&mut String::new());
            reg.unregister().unwrap();
            println!("UNREGISTERED");
        }
        "register-later" => {
            let (name, ms) = arg.split_once(' ').unwrap();
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            let reg = Registration::builder(name, "pipe:later", Kind::Stream)
                .register()
                .unwrap();
            println!("REGISTERED {}", reg.service().record_path().display());
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        other => panic!("unknown role {other}"),
    }
}

fn register_lookup_unregister() {
    let name = unique_name("svc");
    assert!(registry::lookup(&name).unwrap().is_empty());
    let mut kid = registrant(&name, "pipe:billing-1");
    let found = registry::lookup(&name).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0];
    assert_eq!(s.pid(), kid.pid());
    assert_eq!(s.address().to_string(), "pipe:billing-1");
    assert_eq!(s.kind(), Kind::Stream);
    assert_eq!(
        s.metadata().get("instance").map(String::as_str),
        Some(kid.pid().to_string().as_str())
    );
    assert!(!s.process_name().is_empty());
    let path = s.record_path().to_owned();
    assert!(path.starts_with(registry::dir().unwrap()));
    kid.close_stdin();
    assert_eq!(kid.line(), "UNREGISTERED");
    assert!(registry::lookup(&name).unwrap().is_empty());
    assert!(!path.exists(), "{} is left", path.display());

    // In this process: the guard's drop removes the record.
    let reg = Registration::builder(&name, "tcp:127.0.0.1:9", Kind::Rpc)
        .meta("version", "2")
        .register()
        .unwrap();
    let path = reg.service().record_path().to_owned();
    assert_eq!(registry::lookup(&name).unwrap()[0].kind(), Kind::Rpc);
    drop(reg);
    assert!(!path.exists());
    assert!(registry::lookup(&name).unwrap().is_empty());
}

fn killed_owner() {
    let name = unique_name("svc");
    let mut kid = registrant(&name, "pipe:x");
    let path = registry::lookup(&name).unwrap()[0].record_path().to_owned();
    // SIGKILL on Unix, TerminateProcess on Windows: no destructor runs.
    kid.kill();
    assert!(
        path.exists(),
        "the killed owner cannot have removed its record"
    );
    // As if it had also been killed while writing another record.
    let file = path.file_name().unwrap().to_str().unwrap();
    let unfinished = path.with_file_name(format!(".{}.tmp", file.replace("-0.json", "-9.json")));
    std::fs::write(&unfinished, "{\"format\": \"ipckit-serv").unwrap();
    assert!(registry::lookup(&name).unwrap().is_empty());
    assert!(registry::list().unwrap().services.is_empty());
    // The next writer (of another name) cleans it up.
    let _other = Registration::builder(unique_name("other"), "pipe:y", Kind::Stream)
        .register()
        .unwrap();
    assert!(!path.exists(), "{} was not cleaned up", path.display());
    assert!(
        !unfinished.exists(),
        "{} was not cleaned up",
        unfinished.display()
    );
}

/// A record that names a live process by pid but with another start time (the
/// pid of a dead owner, reused) is not taken for that process's.
fn pid_reuse() {
    let name = unique_name("svc");
    let real = Registration::builder(&name, "pipe:real", Kind::Stream)
        .register()
        .unwrap();
    let path = real.service().record_path().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let file = path.file_name().unwrap().to_str().unwrap();
    let mut parts = file.splitn(3, '-');
    let (pid, start) = (parts.next().unwrap(), parts.next().unwrap());
    let older: u64 = start.parse::<u64>().unwrap().saturating_sub(1);
    let forged = text
        .replace(
            &format!("\"start_time\": {start}"),
            &format!("\"start_time\": {older}"),
        )
        .replace("pipe:real", "pipe:forged");
    assert_ne!(forged, text);
    let forged_path = path.with_file_name(format!("{pid}-{older}-999.json"));
    std::fs::write(&forged_path, forged).unwrap();
    let found = registry::lookup(&name).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].address().to_string(), "pipe:real");
    assert!(forged_path.exists());
    let _other = Registration::builder(unique_name("other"), "pipe:y", Kind::Stream)
        .register()
        .unwrap();
    assert!(
        !forged_path.exists(),
        "the record of the 'dead' owner stays"
    );
    assert!(path.exists());
}

/// `wait_for` returns within 100 ms of a registration another process makes
/// later. The blocking wait has no timer of its own: it sleeps in one wait on
/// the change notification for its whole 30 s timeout, so a wake-up soon
/// after the registration can only come from the notification.
fn wait_woken() {
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let name = unique_name("late");
        let mut kid = later("register-later", &name, 300);
        let begun = Instant::now();
        let found = registry::wait_for(&name, Duration::from_secs(30)).unwrap();
        let woke = SystemTime::now();
        let waited = begun.elapsed();
        let latency = woke
            .duration_since(found.registered_at())
            .unwrap_or_default();
        assert_eq!(found.pid(), kid.pid());
        assert!(
            waited >= Duration::from_millis(250),
            "{waited:?}: did not wait"
        );
        latencies.push(latency);
        kid.kill();
    }
    latencies.sort();
    println!(
        "wake-up after a later registration: {:?} (median {:?}, max {:?})",
        latencies, latencies[2], latencies[4]
    );
    let bound = Duration::from_millis(100) * slow_factor();
    assert!(latencies[4] < bound, "{latencies:?}: max over {bound:?}");
    // Timed out without a registration: TimedOut, after the timeout.
    let begun = Instant::now();
    let err = registry::wait_for(&unique_name("never"), Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(begun.elapsed() >= Duration::from_millis(300));
}

fn many_instances() {
    let name = unique_name("svc");
    let mut kids: Vec<Kid> = (0..8)
        .map(|i| registrant(&name, &format!("pipe:inst-{i}")))
        .collect();
    let found = registry::lookup(&name).unwrap();
    assert_eq!(found.len(), 8, "{found:?}");
    let mut pids: Vec<u32> = found.iter().map(|s| s.pid()).collect();
    pids.sort();
    let mut want: Vec<u32> = kids.iter().map(Kid::pid).collect();
    want.sort();
    assert_eq!(pids, want);
    // Oldest registration first.
    assert_eq!(found[0].address().to_string(), "pipe:inst-0");
    assert!(
        found
            .windows(2)
            .all(|w| w[0].registered_at() <= w[1].registered_at())
    );
    kids[0].kill();
    let found = registry::lookup(&name).unwrap();
    assert_eq!(found.len(), 7);
    assert_eq!(found[0].address().to_string(), "pipe:inst-1");
    for kid in &mut kids[1..4] {
        kid.close_stdin();
        assert_eq!(kid.line(), "UNREGISTERED");
    }
    assert_eq!(registry::lookup(&name).unwrap().len(), 4);
}

/// `service:NAME` connects to the first live instance: byte streams and
/// message channels; no instance is `NotFound`, naming the service.
fn service_address() {
    let name = unique_name("svc");
    let addr = format!("pipe:{}", unique_name("ep"));
    let listener = ipckit::Listener::bind(addr.as_str()).unwrap();
    let server = std::thread::spawn(move || {
        echo5(&mut listener.accept().unwrap());
    });
    let err = ipckit::Stream::connect(format!("service:{name}")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    let _reg = Registration::builder(&name, addr.as_str(), Kind::Stream)
        .register()
        .unwrap();
    let mut s = ipckit::Stream::connect(format!("service:{name}")).unwrap();
    assert_eq!(s.peer_addr().to_string(), addr);
    round_trip5(&mut s, b"hello");
    server.join().unwrap();

    let mname = unique_name("msvc");
    let maddr = format!("pipe:{}", unique_name("mep"));
    let ml = ipckit::MessageListener::bind(maddr.as_str()).unwrap();
    let _mreg = Registration::builder(&mname, maddr.as_str(), Kind::Message)
        .register()
        .unwrap();
    let mserver = std::thread::spawn(move || {
        let m = ml.accept().unwrap();
        let msg = m.recv().unwrap().unwrap();
        m.send(&msg).unwrap();
    });
    let m = ipckit::MessageStream::connect(format!("service:{mname}")).unwrap();
    m.send(b"one message").unwrap();
    assert_eq!(m.recv().unwrap().unwrap(), b"one message");
    mserver.join().unwrap();

    // A listener cannot bind a service name; registering one as an address is refused.
    let err = ipckit::Listener::bind(format!("service:{name}")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let err = Registration::builder("x", format!("service:{name}"), Kind::Stream)
        .register()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{err}");
}

/// A record whose address no longer answers is reported as such.
fn probe() {
    let name = unique_name("svc");
    let addr = format!("pipe:{}", unique_name("ep"));
    let listener = ipckit::Listener::bind(addr.as_str()).unwrap();
    let _reg = Registration::builder(&name, addr.as_str(), Kind::Stream)
        .register()
        .unwrap();
    let s = &registry::lookup(&name).unwrap()[0];
    assert_eq!(s.probe(), State::Answering);
    drop(listener);
    assert_eq!(s.probe(), State::NotAnswering);
}

/// Gives the file or directory at `path` to another user, and returns how the
/// registry names that owner; `None` (saying why, SKIPPED) where this machine
/// has no way to. `visible` tells when the change shows (under Wine the
/// `chown` runs as a Unix process that cannot be waited for).
///
/// Unix: root chowns it to uid 65534. Windows: under Wine only, where a file's
/// owner SID comes from its Unix owner (the user's SID for this process's uid,
/// Anonymous Logon, S-1-5-7, for any other) and a Windows program can run the
/// Unix `chown`; Windows itself has no second account here, and Wine ignores
/// an owner set through a security descriptor.
fn give_to_other_user(path: &Path, test: &str, visible: impl Fn() -> bool) -> Option<&'static str> {
    #[cfg(unix)]
    {
        let _ = visible; // chown has finished when it returns
        if !util::users::can_switch_users(test) {
            return None;
        }
        std::os::unix::fs::chown(path, Some(util::users::OTHER_UID), None).unwrap();
        Some("owned by uid 65534")
    }
    #[cfg(windows)]
    {
        if !ipckit::platform::is_wine() {
            eprintln!("SKIPPED {test} on Windows: no second user account here to own a file");
            return None;
        }
        let unix = util::win32::unix_path(path);
        match util::win32::run_unix("/bin/chown", &["65534", &unix], visible) {
            Ok(()) => Some("owned by S-1-5-7"),
            Err(why) => {
                eprintln!("SKIPPED {test} under Wine: {why}");
                None
            }
        }
    }
}

/// A record file owned by another user is ignored, and reported.
fn foreign_record() {
    let name = unique_name("svc");
    let reg = Registration::builder(&name, "pipe:mine", Kind::Stream)
        .register()
        .unwrap();
    let path = reg.service().record_path().to_owned();
    let file = path.file_name().unwrap().to_str().unwrap();
    let copy = path.with_file_name(file.replace(".json", "77.json"));
    std::fs::copy(&path, &copy).unwrap();
    let reported = || {
        let listing = registry::list().unwrap();
        listing.problems.iter().any(|p| p.path == copy)
    };
    let Some(owner) = give_to_other_user(&copy, "foreign_record", reported) else {
        return;
    };
    let listing = registry::list().unwrap();
    assert_eq!(listing.services.len(), 1, "{listing:?}");
    let problem = listing
        .problems
        .iter()
        .find(|p| p.path == copy)
        .expect("the foreign record is reported");
    assert!(problem.reason.contains(owner), "{}", problem.reason);
    assert_eq!(registry::lookup(&name).unwrap().len(), 1);
}

/// A corrupt or truncated record is reported clearly and skipped; the others
/// are still found.
fn corrupt_record() {
    let name = unique_name("svc");
    let reg = Registration::builder(&name, "pipe:ok", Kind::Stream)
        .register()
        .unwrap();
    let path = reg.service().record_path().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
    let truncated = path.with_file_name(format!("{stem}1.json"));
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let empty = path.with_file_name(format!("{stem}2.json"));
    std::fs::write(&empty, "").unwrap();
    let future = path.with_file_name(format!("{stem}3.json"));
    std::fs::write(&future, text.replace("\"version\": 1", "\"version\": 9")).unwrap();
    let listing = registry::list().unwrap();
    assert_eq!(listing.services.len(), 1, "{listing:?}");
    let reason = |p: &Path| -> String {
        listing
            .problems
            .iter()
            .find(|x| x.path == p)
            .unwrap_or_else(|| panic!("{} not reported: {listing:?}", p.display()))
            .to_string()
    };
    assert!(
        reason(&truncated).contains("not valid JSON"),
        "{}",
        reason(&truncated)
    );
    assert!(reason(&truncated).contains(&*truncated.to_string_lossy()));
    assert!(reason(&empty).contains("empty"), "{}", reason(&empty));
    assert!(
        reason(&future).contains("record version 9"),
        "{}",
        reason(&future)
    );
    assert_eq!(registry::lookup(&name).unwrap().len(), 1);
}

/// A registry directory that another user owns, that others can write to, or
/// that is a symlink is refused by services and clients alike.
fn squatted_dir() {
    let dir = registry::dir().unwrap();
    let parent = dir.parent().unwrap().to_owned();
    std::fs::create_dir_all(&parent).unwrap();
    let refused = |needle: &str| {
        let err = Registration::builder("svc", "pipe:x", Kind::Stream)
            .register()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.contains(&*dir.to_string_lossy()), "{msg}");
        let err = registry::lookup("svc").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let err = registry::wait_for("svc", Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    };
    let elsewhere = parent.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A symlink to a directory of the user's own.
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        refused("symlink");
        std::fs::remove_file(&dir).unwrap();
        // Writable by others.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        refused("writable by its group or by others");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    #[cfg(windows)]
    {
        // A file where the directory should be: refused, never followed.
        std::fs::write(&dir, b"squatter").unwrap();
        let err = Registration::builder("svc", "pipe:x", Kind::Stream)
            .register()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&*dir.to_string_lossy()), "{msg}");
        std::fs::remove_file(&dir).unwrap();
        // A Unix symlink, which Wine shows as a reparse point (CreateSymbolicLinkW
        // creates nothing under Wine 8; Windows itself needs a privilege here).
        if ipckit::platform::is_wine() {
            let (target, link) = (
                util::win32::unix_path(&elsewhere),
                util::win32::unix_path(&dir),
            );
            let linked = || std::fs::symlink_metadata(&dir).is_ok();
            util::win32::run_unix("/bin/ln", &["-s", &target, &link], linked).unwrap();
            refused("symlink");
            util::win32::run_unix("/bin/rm", &[&link], || !linked()).unwrap();
        } else {
            eprintln!(
                "SKIPPED squatted_dir (symlink) on Windows: needs SeCreateSymbolicLinkPrivilege"
            );
        }
        std::fs::create_dir(&dir).unwrap();
    }
    // Owned by another user.
    let foreign = || registry::lookup("svc").is_err();
    if let Some(owner) = give_to_other_user(&dir, "squatted_dir (owner)", foreign) {
        refused(owner);
    }
}

/// `watch` yields the instances there at its start, then registrations and
/// removals, including an owner that was killed.
fn watch() {
    let name = unique_name("svc");
    let _first = Registration::builder(&name, "pipe:first", Kind::Stream)
        .register()
        .unwrap();
    let mut w = registry::watch().unwrap();
    let next = |w: &mut registry::Watch| {
        w.next_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("an event within 10 s")
    };
    match next(&mut w) {
        Event::Added(s) => assert_eq!(s.address().to_string(), "pipe:first"),
        e => panic!("{e:?}"),
    }
    let mut kid = registrant(&name, "pipe:second");
    match next(&mut w) {
        Event::Added(s) => assert_eq!(s.pid(), kid.pid()),
        e => panic!("{e:?}"),
    }
    let killed_at = Instant::now();
    kid.kill();
    match next(&mut w) {
        Event::Removed(s) => assert_eq!(s.address().to_string(), "pipe:second"),
        e => panic!("{e:?}"),
    }
    println!(
        "a killed owner's removal seen after {:?}",
        killed_at.elapsed()
    );
    drop(_first);
    match next(&mut w) {
        Event::Removed(s) => assert_eq!(s.address().to_string(), "pipe:first"),
        e => panic!("{e:?}"),
    }
    assert!(
        w.next_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none()
    );
}

fn tokio_wait() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = unique_name("async");
    let mut kid = later("register-later", &name, 200);
    let found = rt
        .block_on(registry::tokio::wait_for(&name, Duration::from_secs(30)))
        .unwrap();
    assert_eq!(found.pid(), kid.pid());
    kid.kill();
    let err = rt
        .block_on(registry::tokio::wait_for(
            &unique_name("never"),
            Duration::from_millis(200),
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn register_lookup_and_unregister() {
    isolated("register_lookup_unregister");
}

#[test]
fn a_killed_owners_record_is_never_returned_and_is_cleaned_up() {
    isolated("killed_owner");
}

#[test]
fn a_reused_pid_is_not_taken_for_the_owner() {
    isolated("pid_reuse");
}

#[test]
fn wait_for_is_woken_by_a_later_registration_within_100_ms() {
    isolated("wait_woken");
}

#[test]
fn many_instances_of_one_name() {
    isolated("many_instances");
}

#[test]
fn service_addresses_connect_to_the_first_live_instance() {
    isolated("service_address");
}

#[test]
fn an_address_that_no_longer_answers_is_reported() {
    isolated("probe");
}

#[test]
fn another_users_record_is_ignored() {
    isolated("foreign_record");
}

#[test]
fn a_corrupt_or_truncated_record_is_reported_and_skipped() {
    isolated("corrupt_record");
}

#[test]
fn a_squatted_or_symlinked_registry_is_refused() {
    isolated("squatted_dir");
}

#[test]
fn watch_yields_added_and_removed_instances() {
    isolated("watch");
}

#[test]
fn tokio_wait_for() {
    isolated("tokio_wait");
}

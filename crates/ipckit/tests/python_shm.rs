//! Python's `multiprocessing.shared_memory` attached to an ipckit region
//! (Unix): what docs/PEERS.md says about its resource tracker, checked with a
//! real `python3`. Without care Python deletes at exit a region it only
//! attached to; with `track=False` (3.13+) or an unregister (before 3.13) the
//! region stays and ipckit reads what Python wrote.
#![cfg(unix)]

mod util;

use std::path::Path;
use std::process::Command;

use ipckit::ErrorKind;
use ipckit::shm::SharedMemory;
use util::{unique_name, watchdog};

fn attach(name: &str, text: &str, keep: bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/shm_attach.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args([name, text]);
    if keep {
        cmd.arg("--keep");
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python3: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "wrote");
}

#[test]
fn python_deletes_a_region_it_only_attached_to_unless_told_not_to() {
    watchdog(std::time::Duration::from_secs(60), || {
        // Without care: the resource tracker unlinks the region at exit.
        let name = unique_name("py-shm-tracked");
        let region = SharedMemory::create(&name, 4096).expect("create");
        attach(&name, "hello", false);
        let mut buf = [0u8; 5];
        region
            .read_at(0, &mut buf)
            .expect("the mapping outlives the name");
        assert_eq!(&buf, b"hello");
        let err = SharedMemory::open(&name).expect_err("Python's tracker removed the name");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        drop(region);

        // With the fix from docs/PEERS.md the region stays.
        let name = unique_name("py-shm-kept");
        let mut region = SharedMemory::create(&name, 4096).expect("create");
        region.set_remove_on_drop(true);
        attach(&name, "kept!", true);
        let again = SharedMemory::open(&name).expect("the region is still there");
        let mut buf = [0u8; 5];
        again.read_at(0, &mut buf).expect("read");
        assert_eq!(&buf, b"kept!");
    });
}

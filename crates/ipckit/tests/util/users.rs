//! Tests that run children as another user (Unix): who that user is, whether
//! this environment can, and a scratch directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipckit::security::UserId;

use super::{Kid, this_test_as_child, unique_name};

/// The other user the tests run children as (`nobody` on Debian), and a group
/// distinct from it, so that uid and gid cannot be confused.
pub(crate) const OTHER_UID: u32 = 65534;
pub(crate) const OTHER_GID: u32 = 65533;

/// Whether this environment can run processes as another user; prints why not.
pub(crate) fn can_switch_users(test: &str) -> bool {
    match UserId::current().unwrap() {
        UserId::Uid(0) => {}
        other => {
            eprintln!(
                "SKIPPED {test}: needs root to run a child as uid {OTHER_UID}, runs as {other}"
            );
            return false;
        }
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED {test}: setpriv (util-linux) is not installed");
        return false;
    }
    true
}

/// This program as a child in `role` with `arg`, run through its ignored test
/// `entry`: as uid `OTHER_UID`, gid `OTHER_GID` and the supplementary `groups`
/// (none if empty), or with `user: None` as we are; `env` is added to its
/// environment.
pub(crate) fn child_as(
    entry: &str,
    user: Option<&[u32]>,
    role: &str,
    arg: &str,
    env: &[(&str, &Path)],
) -> Kid {
    let mut prefix = Vec::new();
    if let Some(groups) = user {
        prefix.push("setpriv".to_owned());
        prefix.push(format!("--reuid={OTHER_UID}"));
        prefix.push(format!("--regid={OTHER_GID}"));
        if groups.is_empty() {
            prefix.push("--clear-groups".to_owned());
        } else {
            let list: Vec<String> = groups.iter().map(u32::to_string).collect();
            prefix.push(format!("--groups={}", list.join(",")));
        }
    }
    let mut cmd = this_test_as_child(&prefix, entry, role, arg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Kid::spawn(cmd)
}

/// A fresh directory under /tmp with `mode`, removed with what is in it on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str, mode: u32) -> TempDir {
        let dir = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        TempDir(dir)
    }

    pub(crate) fn sock(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! `UserId::lookup` on Unix asks the system's user database (`getpwnam_r`,
//! so NSS sources such as LDAP count, not only /etc/passwd).
#![cfg(unix)]

use ipckit::ErrorKind;
use ipckit::security::UserId;

#[test]
fn lookup_finds_users_by_name_and_names_the_missing_one() {
    assert_eq!(UserId::lookup("root").unwrap(), UserId::Uid(0));
    // The current user, whoever runs the tests, by the name `id -un` gives.
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("run id -un");
    let me = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(UserId::lookup(&me).unwrap(), UserId::current().unwrap());
    let err = UserId::lookup("ipckit-no-such-user-here").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("ipckit-no-such-user-here"),
        "{err}"
    );
}

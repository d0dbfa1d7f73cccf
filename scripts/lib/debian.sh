# Shared by scripts/test-windows.sh and scripts/check-cross.sh (sourced; each
# defines `die` first): installing Debian packages and making sure Debian's
# Rust toolchain (cargo-web: the only one with the standard library's source
# that -Zbuild-std needs) is recent enough.

# apt-get install PACKAGES, as root, waiting (rather than failing) while
# another apt/dpkg run holds the lock.
apt_install() {
    ((EUID == 0)) || die "must run as root to install: $*"
    echo "installing: $*"
    local apt_opts=(-y -q -o DPkg::Lock::Timeout=900)
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install "$@"
}

# The packages of PACKAGES ("$@") that are not installed, one per line.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qx 'install ok installed' \
            || echo "$pkg"
    done
}

toolchain_ok() {
    [[ $(/usr/bin/cargo --version) =~ ^cargo\ 1\.(9[0-9]|[1-9][0-9][0-9])\. ]]
}

# Makes /usr/bin/cargo Debian's 1.9x: an old machine's package lists may still
# offer an older cargo-web, so they are refreshed and the toolchain packages
# upgraded rather than fail.
debian_rust_toolchain() {
    if ! toolchain_ok; then
        echo "/usr/bin/cargo is '$(/usr/bin/cargo --version)'; need 1.9x: updating the package lists and upgrading"
        ((EUID == 0)) || die "must run as root to upgrade the Debian Rust toolchain"
        local apt_opts=(-y -q -o DPkg::Lock::Timeout=900)
        DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
        DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install --only-upgrade \
            rustc-web cargo-web rust-web-src rust-web-clippy
    fi
    toolchain_ok || die "/usr/bin/cargo is '$(/usr/bin/cargo --version)' even after an upgrade; expected Debian's cargo-web 1.9x"
}

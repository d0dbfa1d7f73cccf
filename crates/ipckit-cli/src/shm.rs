//! `ipckit shm create|write|read|rm` on named shared-memory regions. (The
//! `shm:NAME` channels of `listen` and `connect` are message channels, served
//! by `message`.)

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use ipckit::shm::{OpenOptions, SharedMemory};

use crate::stdout_error;

/// `ipckit shm create NAME SIZE`: on Unix the region outlives the command
/// (remove it with `shm rm`); on Windows a mapping lives only while a process
/// holds it, so the command holds it until its stdin ends.
pub(crate) fn create(name: &str, size: usize, verbose: bool) -> Result<()> {
    let mut region = SharedMemory::create(name, size).map_err(|e| {
        if e.kind() == ipckit::ErrorKind::AddrInUse {
            let bare = bare(name);
            anyhow::anyhow!(
                "shm create {bare}: a region named {bare} exists already (remove it with \
                 `ipckit shm rm {bare}`, or choose another name)"
            )
        } else {
            e.into()
        }
    })?;
    region.set_remove_on_drop(false);
    if verbose {
        eprintln!("created {} of {} bytes", display(name), region.len());
    }
    if cfg!(windows) {
        eprintln!(
            "holding {} until stdin ends (Windows removes a mapping with its last handle)",
            display(name)
        );
        io::copy(&mut io::stdin().lock(), &mut io::sink()).context("read stdin")?;
    }
    Ok(())
}

/// SIZE of `shm create`: at least one byte.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("a region holds at least 1 byte".into()),
        Ok(size) => Ok(size),
        Err(e) => Err(format!("not a number of bytes: {e}")),
    }
}

/// NAME without `shm:`, as `shm rm` and `shm create` take it.
fn bare(name: &str) -> &str {
    name.strip_prefix("shm:").unwrap_or(name)
}

fn display(name: &str) -> String {
    if name.starts_with("shm:") {
        name.to_owned()
    } else {
        format!("shm:{name}")
    }
}

/// `ipckit shm write NAME [--offset N]`: copies stdin into the region.
pub(crate) fn write(name: &str, offset: usize, allow_foreign: bool) -> Result<()> {
    let region = OpenOptions::new().allow_foreign(allow_foreign).open(name)?;
    let mut data = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut data)
        .context("read stdin")?;
    region.write_at(offset, &data)?;
    Ok(())
}

/// `ipckit shm read NAME [--offset N] [--len N]`: prints bytes of the region
/// (by default from the offset to the end).
pub(crate) fn read(
    name: &str,
    offset: usize,
    len: Option<usize>,
    allow_foreign: bool,
) -> Result<()> {
    let region = OpenOptions::new().allow_foreign(allow_foreign).open(name)?;
    let len = match len {
        Some(len) => len,
        None => region.len().checked_sub(offset).with_context(|| {
            format!(
                "offset {offset} is past the end of {} ({} bytes)",
                display(name),
                region.len()
            )
        })?,
    };
    let mut buf = vec![0; len];
    region.read_at(offset, &mut buf)?;
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&buf)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// `ipckit shm rm NAME`.
pub(crate) fn remove(name: &str) -> Result<()> {
    SharedMemory::remove(name).map_err(|e| {
        if e.kind() == ipckit::ErrorKind::NotFound {
            let bare = bare(name);
            anyhow::anyhow!("shm rm {bare}: no region named {bare} exists (nothing to remove)")
        } else {
            e.into()
        }
    })
}

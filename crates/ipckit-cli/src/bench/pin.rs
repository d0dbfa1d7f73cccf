//! `--pin same|split`: both ends of every measurement on one CPU, or one
//! each. The bench pins its own thread before it starts any other (threads
//! and the peer process start from it) and passes the peer its CPU, which the
//! peer pins itself to first thing.

use anyhow::{Result, bail};

/// Where the two ends run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pin {
    /// Both ends on one CPU: every wake-up is a context switch.
    Same,
    /// One CPU each: a wake-up crosses CPUs.
    Split,
}

impl Pin {
    pub(super) fn name(self) -> &'static str {
        match self {
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }

    /// The CPUs for this process and for the peer, from those this process
    /// may run on.
    pub(super) fn cpus(self) -> Result<(usize, usize)> {
        let allowed = imp::allowed()?;
        match (self, allowed.as_slice()) {
            (_, []) => bail!("--pin: this process may run on no CPU"),
            (Pin::Same, [first, ..]) => Ok((*first, *first)),
            (Pin::Split, [first, second, ..]) => Ok((*first, *second)),
            (Pin::Split, [only]) => {
                bail!("--pin split needs two CPUs; this process may run on CPU {only} only")
            }
        }
    }
}

/// Pins the calling thread (and what it starts from now on) to `cpu`.
pub(super) fn pin_to(cpu: usize) -> Result<()> {
    imp::pin_to(cpu)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod imp {
    use anyhow::{Context, Result, bail};
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

    pub(super) fn allowed() -> Result<Vec<usize>> {
        let set = sched_getaffinity(None).context("--pin: read this process's CPUs")?;
        Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
    }

    pub(super) fn pin_to(cpu: usize) -> Result<()> {
        if cpu >= CpuSet::MAX_CPU {
            bail!(
                "--pin: CPU {cpu} is beyond the largest this OS names ({})",
                CpuSet::MAX_CPU - 1
            );
        }
        let mut set = CpuSet::new();
        set.set(cpu);
        sched_setaffinity(None, &set).with_context(|| format!("--pin: run on CPU {cpu}"))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod imp {
    use anyhow::{Result, anyhow};

    fn unsupported() -> anyhow::Error {
        anyhow!(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "--pin: pinning to a CPU is not supported on {} (Linux and FreeBSD only)",
                std::env::consts::OS
            ),
        ))
    }

    pub(super) fn allowed() -> Result<Vec<usize>> {
        Err(unsupported())
    }

    pub(super) fn pin_to(_: usize) -> Result<()> {
        Err(unsupported())
    }
}

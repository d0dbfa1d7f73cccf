//! The registry's async face (the `tokio` feature): waiting for a service
//! without blocking the runtime. [`lookup`](super::lookup) and
//! [`Registration`](super::Registration) only touch a small directory and are
//! used as they are.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Service;
use crate::error::{Error, ErrorKind, Result};

/// [`wait_for`](super::wait_for), async: the wait runs on tokio's blocking
/// pool, woken by the same change notification.
///
/// # Cancel safety
///
/// Dropping the future abandons the wait: the blocking thread notices within
/// a quarter of a second and ends.
///
/// # Errors
///
/// Those of [`wait_for`](super::wait_for); an error if it is not called
/// within a tokio runtime.
pub async fn wait_for(name: &str, timeout: Duration) -> Result<Service> {
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancel.clone());
    let name = name.to_owned();
    let limit = Instant::now() + timeout;
    let task = ::tokio::task::spawn_blocking(move || {
        super::watch::wait_until(&name, limit, Some(&cancel))
    });
    let result = task.await.map_err(|e| {
        Error::new(
            ErrorKind::Os,
            format!("wait for a service: the waiting task failed: {e}"),
        )
    })?;
    drop(guard);
    result
}

/// [`connect_each`](super::connect::connect_each), for the tokio faces: the
/// waits do not block the runtime.
pub(crate) async fn connect_each<C>(
    addr: crate::Address,
    opts: &crate::ConnectOptions,
    mut attempt: impl AsyncFnMut(crate::Address, &crate::ConnectOptions) -> Result<C>,
) -> Result<C> {
    use super::connect::{Plan, Wait};
    let crate::Address::Service(name) = &addr else {
        return attempt(addr, opts).await;
    };
    let mut plan = Plan::new(name, opts);
    loop {
        for at in plan.instances()? {
            match attempt(at.clone(), &plan.single).await {
                Ok(conn) => return Ok(conn),
                Err(e) => plan.failed(at, e),
            }
        }
        match plan.wait()? {
            Wait::Registration(limit) => {
                drop(wait_for(name, limit.saturating_duration_since(Instant::now())).await?);
            }
            Wait::Pause(pause) => ::tokio::time::sleep(pause).await,
        }
    }
}

//! The connections of the blocking server that are served on a thread of
//! their own: message channels that have no async face (`shm:`, ipckit's
//! shared-memory channels). Their accepts run on a thread ([`Accepts`]);
//! each connection reads its requests on a thread ([`spawn`]) and hands
//! each call to the server's [`Run`], which runs a quick call right there
//! (as the runtime's connections do, `Core::run_pooled`) and a slow one on
//! the server's pool; each response is sent from where its call ran. A quick call costs no hand-over
//! between threads: what makes calls over shared memory fast.
//!
//! The rules are those of the runtime's connections (`core::serve_conn`): at
//! most `max_concurrent_calls` calls of a connection without their response
//! sent, a response that waits longer than the reply timeout closes the
//! connection, a frame over the limit is answered with -32600 and closes it,
//! and a stop lets the calls in flight finish and answer.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ::tokio::sync::{mpsc, oneshot, watch};
use ipckit::{Address, ConnectOptions, MessageListener, MessageStream};

use crate::conn::{Conn, Writer};
use crate::error::{Error, ErrorKind};
use crate::methods::Job;
use crate::options::{ServerOptions, lock, reply_timed_out, too_large_response};
use crate::signal::Signal;

/// Where a response goes once its call is done (`None`: a notification).
pub(crate) type Reply = Box<dyn FnOnce(Option<Vec<u8>>) + Send>;

/// How the server runs one call of a connection.
pub(crate) type Run = Arc<dyn Fn(Job, Reply) + Send + Sync>;

/// How often a connection waiting for a request looks whether the server
/// stops (nothing else can end a wait on a shared-memory channel).
const STOP_CHECK: Duration = Duration::from_millis(100);

/// How long the server waits for its own wake-up client when it stops.
const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A listener whose accepts run on a thread, handed to the accept loop.
pub(crate) struct Accepts {
    addr: Address,
    accepted: ::tokio::sync::Mutex<mpsc::Receiver<ipckit::Result<MessageStream>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Accepts {
    /// Accepts on `listener` on a thread of its own until dropped.
    pub(crate) fn start(listener: MessageListener) -> io::Result<Accepts> {
        let addr = listener.local_addr().clone();
        let (tx, rx) = mpsc::channel(1);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let thread = thread::Builder::new()
            .name("ipckit-rpc-accept".into())
            .spawn(move || {
                loop {
                    let accepted = listener.accept();
                    if flag.load(Ordering::Acquire) || tx.blocking_send(accepted).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Accepts {
            addr,
            accepted: ::tokio::sync::Mutex::new(rx),
            stopping,
            thread: Some(thread),
        })
    }

    pub(crate) fn local_addr(&self) -> &Address {
        &self.addr
    }

    /// The next connection (or accept error).
    pub(crate) async fn accept(&self) -> ipckit::Result<MessageStream> {
        match self.accepted.lock().await.recv().await {
            Some(accepted) => accepted,
            // The thread ends only once this is dropped.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Accepts {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.accepted.get_mut().close();
        // Nothing ends a blocking accept but a client: be that client.
        let mut opts = ConnectOptions::new();
        opts.timeout(WAKE_TIMEOUT);
        let woke = opts.connect_message(&self.addr);
        if let (Ok(_), Some(thread)) = (woke, self.thread.take()) {
            let _ = thread.join();
        }
    }
}

/// Serves `channel` of the blocking server on a thread of its own; the
/// receiver is told (or dropped) when the connection is done.
pub(crate) fn spawn(
    opts: ServerOptions,
    channel: MessageStream,
    stop: watch::Receiver<bool>,
    run: Run,
) -> oneshot::Receiver<()> {
    let (done, finished) = oneshot::channel();
    let hook = opts.clone();
    let started = thread::Builder::new()
        .name("ipckit-rpc-conn".into())
        .spawn(move || {
            serve(&opts, channel, &stop, &run);
            let _ = done.send(());
        });
    if let Err(e) = started {
        hook.report(&Error::io("start a thread for a connection", &e));
    }
    finished
}

/// The sending side of one connection, shared by the calls in flight.
struct Out {
    writer: Mutex<Writer>,
    peer: String,
    /// Whom to tell of a response that could not be sent.
    opts: ServerOptions,
    /// Calls whose response is not yet sent.
    in_flight: Mutex<usize>,
    changed: Signal,
    most: usize,
    /// A send failed: nothing more can be answered.
    broken: AtomicBool,
}

impl Out {
    fn send(&self, bytes: &[u8]) {
        if self.broken.load(Ordering::Acquire) {
            return;
        }
        let deadline = Instant::now() + self.opts.reply_timeout;
        if let Err(e) = lock(&self.writer).send(bytes, Some(deadline), &self.peer) {
            self.broken.store(true, Ordering::Release);
            if e.kind() == ErrorKind::TimedOut {
                self.opts
                    .report(&reply_timed_out(&e, self.opts.reply_timeout));
            }
        }
    }

    /// Waits until a call fewer than the most is in flight, and takes its place.
    fn take_slot(&self) {
        let mut n = lock(&self.in_flight);
        while *n >= self.most {
            n = self.changed.wait(n);
        }
        *n += 1;
    }
}

/// A call's place among those in flight, given back when its response has
/// been sent (or its call dropped unrun).
struct Slot(Arc<Out>);

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.0.in_flight) -= 1;
        self.0.changed.notify_all();
    }
}

impl Out {
    /// Waits until every call in flight has sent its response.
    fn drain(&self) {
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            n = self.changed.wait(n);
        }
    }
}

fn serve(opts: &ServerOptions, channel: MessageStream, stop: &watch::Receiver<bool>, run: &Run) {
    let mut conn = match Conn::message(channel, opts.max_frame_size) {
        Ok(conn) => conn,
        Err(e) => return opts.report(&e),
    };
    if let Some(hs) = opts.handshake()
        && let Err(e) = conn.handshake(hs)
    {
        return opts.report(&e);
    }
    let Conn {
        mut reader,
        writer,
        peer,
        ..
    } = conn;
    if let Err(e) = reader.set_timeout(Some(STOP_CHECK)) {
        return opts.report(&e);
    }
    let out = Arc::new(Out {
        writer: Mutex::new(writer),
        peer,
        opts: opts.clone(),
        in_flight: Mutex::new(0),
        changed: Signal::default(),
        most: opts.max_concurrent_calls,
        broken: AtomicBool::new(false),
    });
    while !*stop.borrow() && !out.broken.load(Ordering::Acquire) {
        let frame = match reader.recv(&out.peer) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::TimedOut => continue,
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                opts.report(&e);
                out.send(&too_large_response(&e));
                break;
            }
            Err(e) => {
                if e.kind() == ErrorKind::Protocol {
                    opts.report(&e);
                }
                break;
            }
        };
        // A request that arrives once the server stops is not run (as on
        // the runtime's connections, which stop reading): the wait above
        // sees a stop only every STOP_CHECK.
        if *stop.borrow() {
            break;
        }
        match Job::from_frame(&frame) {
            Err(bytes) => out.send(&bytes),
            Ok(job) => {
                out.take_slot();
                let slot = Slot(Arc::clone(&out));
                run(
                    job,
                    Box::new(move |response| {
                        if let Some(bytes) = response {
                            slot.0.send(&bytes);
                        }
                    }),
                );
            }
        }
    }
    out.drain();
}

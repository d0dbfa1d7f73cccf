//! Service registration for the serving commands (`--register NAME --meta
//! KEY=VALUE` on `listen`, `serve-demo` and `recv`), and `ipckit services`.
//!
//! A serving command registers right after it has bound its endpoint, with the
//! address it actually bound (`tcp:127.0.0.1:0` registers the port the OS
//! chose), so a client that finds the record finds a listening endpoint. The
//! record goes when the command ends, and on Ctrl-C/SIGTERM through
//! `cleanup`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{Context, Result};
use ipckit::Address;
use ipckit::registry::{self, Kind, Registration};
use serde_json::json;

use crate::stdout_error;

/// `--register NAME [--meta KEY=VALUE]...`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RegisterArgs {
    /// Register the endpoint in the per-user service registry as NAME once it
    /// is bound (clients then use service:NAME; `ipckit services` lists it).
    /// The record is removed when the command ends, also on Ctrl-C.
    #[arg(long, value_name = "NAME")]
    pub(crate) register: Option<String>,

    /// With --register: metadata KEY=VALUE for the record (version,
    /// protocol, ...); may be given more than once.
    #[arg(long, value_name = "KEY=VALUE", requires = "register", value_parser = parse_meta)]
    pub(crate) meta: Vec<(String, String)>,
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "invalid metadata {text:?}: expected KEY=VALUE with a non-empty KEY"
        )),
    }
}

/// What the command was asked to register; set once by `main::run`.
static PENDING: OnceLock<RegisterArgs> = OnceLock::new();
/// The registration made, kept until the command ends.
static MADE: Mutex<Option<Registration>> = Mutex::new(None);

/// Remembers what to register once the endpoint is bound.
pub(crate) fn will_register(args: RegisterArgs) {
    let _ = PENDING.set(args);
}

/// Registers the endpoint just bound at `bound` (its actual address), if the
/// command was given --register; call it right after the bind.
pub(crate) fn registered(bound: &Address, kind: Kind, verbose: bool) -> Result<()> {
    let Some(RegisterArgs {
        register: Some(name),
        meta,
    }) = PENDING.get()
    else {
        return Ok(());
    };
    let mut builder = Registration::builder(name, bound, kind);
    for (k, v) in meta {
        builder.meta(k, v);
    }
    let reg = builder
        .register()
        .with_context(|| format!("register {bound} as service {name}"))?;
    crate::cleanup::service_record(reg.service().record_path());
    if verbose {
        eprintln!("registered {bound} as service:{name}");
    }
    *MADE.lock().unwrap_or_else(PoisonError::into_inner) = Some(reg);
    Ok(())
}

/// Removes the registration at the command's normal end.
pub(crate) fn unregister() {
    drop(MADE.lock().unwrap_or_else(PoisonError::into_inner).take());
}

/// What `service:NAME` names now (any other address as it is); with `retry`,
/// a service not registered yet is waited for, until `timeout` if given.
pub(crate) fn resolve(
    addr: &Address,
    retry: bool,
    timeout: Option<std::time::Duration>,
) -> Result<Address> {
    match addr {
        Address::Service(name) if retry => {
            // No timeout: wait as long as anyone would (a century).
            let limit = timeout.unwrap_or(std::time::Duration::from_secs(100 * 365 * 86_400));
            Ok(registry::wait_for(name, limit)?.address().clone())
        }
        _ => Ok(registry::resolve(addr)?),
    }
}

/// The service names registered for each address (its text), for `ipckit ls`;
/// empty if the registry cannot be read.
pub(crate) fn names_by_address() -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    if let Ok(listing) = registry::list() {
        for s in listing.services {
            map.entry(s.address().to_string())
                .or_default()
                .push(s.name().to_owned());
        }
    }
    map
}

/// `ipckit services [--json]`.
pub(crate) fn run(json: bool) -> Result<()> {
    let listing = registry::list().context("list the service registry")?;
    let rows: Vec<_> = listing
        .services
        .iter()
        .map(|s| (s, s.probe().as_str()))
        .collect();
    let text = if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(s, state)| {
                json!({
                    "name": s.name(),
                    "address": s.address().to_string(),
                    "kind": s.kind().as_str(),
                    "pid": s.pid(),
                    "process": s.process_name(),
                    "metadata": s.metadata(),
                    "state": state,
                    "record": s.record_path().display().to_string(),
                })
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&list)?;
        text.push('\n');
        text
    } else {
        table(&rows)
    };
    for problem in &listing.problems {
        eprintln!("ipckit: warning: {problem}");
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn table(rows: &[(&registry::Service, &str)]) -> String {
    let width = |f: &dyn Fn(&(&registry::Service, &str)) -> usize, min: usize| {
        rows.iter().map(f).max().unwrap_or(0).max(min)
    };
    let name_w = width(&|(s, _)| s.name().len(), 4);
    let addr_w = width(&|(s, _)| s.address().to_string().len(), 7);
    let state_w = width(&|(_, st)| st.len(), 5);
    let mut text = format!(
        "{:<name_w$}  {:<addr_w$}  {:<8}  {:>7}  {:<15}  {:<state_w$}  METADATA\n",
        "NAME", "ADDRESS", "KIND", "PID", "PROCESS", "STATE"
    );
    for (s, state) in rows {
        let meta: Vec<String> = s
            .metadata()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            text,
            "{:<name_w$}  {:<addr_w$}  {:<8}  {:>7}  {:<15}  {state:<state_w$}  {}",
            s.name(),
            s.address().to_string(),
            s.kind().as_str(),
            s.pid(),
            s.process_name(),
            meta.join(" ")
        )
        .expect("writing to a String cannot fail");
    }
    if rows.is_empty() {
        text.push_str("(no services registered)\n");
    }
    text
}

//! `service:NAME` connects through the registry with real processes: a stale
//! first instance falls back to the next live one (blocking, message and tokio
//! faces), and `retry_not_found` waits for a service that registers later
//! (blocking and tokio), each scenario with a registry of its own.

mod util;

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use ipckit::ErrorKind;
use ipckit::registry::{self, Kind, Registration};
use util::registry::{echo5, isolated, later, round_trip5, run_scenario};
use util::{child_role, unique_name};

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
            &[("fallback", fallback), ("retry_waits", retry_waits)],
        ),
        "serve-later" => {
            // Binds and registers after a pause, then echoes one line to one
            // client of each face that comes.
            let (name, ms) = arg.split_once(' ').unwrap();
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            let addr = format!("pipe:{}", unique_name("later"));
            let listener = ipckit::Listener::bind(addr.as_str()).unwrap();
            let _reg = Registration::builder(name, addr.as_str(), Kind::Stream)
                .register()
                .unwrap();
            println!("REGISTERED");
            std::io::stdout().flush().unwrap();
            for s in listener.incoming() {
                echo5(&mut s.unwrap());
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// `service:NAME` with a stale first instance (registered by a live owner,
/// nothing listening) falls back to the next live one: byte streams, message
/// channels and the tokio faces. With every instance stale, the error names
/// each and why it failed.
fn fallback() {
    let name = unique_name("svc");
    let stale = format!("pipe:{}", unique_name("stale"));
    let live = format!("pipe:{}", unique_name("live"));
    let listener = ipckit::Listener::bind(live.as_str()).unwrap();
    let mlive = format!("pipe:{}", unique_name("mlive"));
    let mlistener = ipckit::MessageListener::bind(mlive.as_str()).unwrap();
    let mname = unique_name("msvc");
    let register = |regs: [(&str, &str, Kind); 2]| -> Vec<Registration> {
        regs.into_iter()
            .map(|(name, addr, kind)| Registration::builder(name, addr, kind).register().unwrap())
            .collect()
    };
    let stale_regs = register([
        (&name, stale.as_str(), Kind::Stream),
        (&mname, stale.as_str(), Kind::Message),
    ]);
    // Records hold milliseconds: the live ones are registered in a later one.
    let stale_at = stale_regs[1].service().registered_at();
    while SystemTime::now() < stale_at + Duration::from_millis(1) {
        std::thread::yield_now();
    }
    let _live_regs = register([
        (&name, live.as_str(), Kind::Stream),
        (&mname, mlive.as_str(), Kind::Message),
    ]);
    assert_eq!(
        registry::lookup(&name).unwrap()[0].address().to_string(),
        stale
    );
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            echo5(&mut listener.accept().unwrap());
        }
    });
    let service = format!("service:{name}");
    let mut s = ipckit::Stream::connect(service.as_str()).unwrap();
    assert_eq!(s.peer_addr().to_string(), live);
    round_trip5(&mut s, b"hello");
    // A message channel likewise.
    let mserver = std::thread::spawn(move || {
        let m = mlistener.accept().unwrap();
        let msg = m.recv().unwrap().unwrap();
        m.send(&msg).unwrap();
    });
    let m = ipckit::MessageStream::connect(format!("service:{mname}")).unwrap();
    assert_eq!(m.peer_addr().to_string(), mlive);
    m.send(b"one").unwrap();
    assert_eq!(m.recv().unwrap().unwrap(), b"one");
    mserver.join().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = ipckit::ConnectOptions::new();
        let mut s = opts.connect_tokio(service.as_str()).await.unwrap();
        assert_eq!(s.peer_addr().to_string(), live);
        round_trip5_async(&mut s, b"async").await;
    });
    server.join().unwrap();

    let dead = unique_name("dead");
    let _dead: Vec<Registration> = (0..2)
        .map(|i| {
            Registration::builder(&dead, format!("pipe:{dead}-{i}").as_str(), Kind::Stream)
                .register()
                .unwrap()
        })
        .collect();
    let err = ipckit::Stream::connect(format!("service:{dead}")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("none of its 2 live instances answered")
            && text.contains(&format!("pipe:{dead}-0"))
            && text.contains(&format!("pipe:{dead}-1")),
        "{text}"
    );
}

/// With `retry_not_found`, `service:NAME` waits for a registration another
/// process makes later (until the timeout), blocking and tokio; without a
/// registration it times out.
fn retry_waits() {
    let mut opts = ipckit::ConnectOptions::new();
    opts.retry_not_found(true).timeout(Duration::from_secs(30));
    let name = unique_name("later");
    let mut kid = later("serve-later", &name, 300);
    let begun = Instant::now();
    let mut s = opts.connect(format!("service:{name}")).unwrap();
    assert!(
        begun.elapsed() >= Duration::from_millis(250),
        "{:?}: did not wait for the registration",
        begun.elapsed()
    );
    assert_eq!(kid.line(), "REGISTERED");
    round_trip5(&mut s, b"block");
    kid.kill();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = unique_name("alater");
    let mut kid = later("serve-later", &name, 300);
    rt.block_on(async {
        let begun = Instant::now();
        let mut s = opts.connect_tokio(format!("service:{name}")).await.unwrap();
        assert!(
            begun.elapsed() >= Duration::from_millis(250),
            "did not wait"
        );
        round_trip5_async(&mut s, b"async").await;
    });
    assert_eq!(kid.line(), "REGISTERED");
    kid.kill();

    opts.timeout(Duration::from_millis(300));
    let begun = Instant::now();
    let err = opts
        .connect(format!("service:{}", unique_name("never")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(begun.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_stale_first_instance_falls_back_to_the_next_live_one() {
    isolated("fallback");
}

#[test]
fn retry_not_found_waits_for_a_service_to_register() {
    isolated("retry_waits");
}

/// [`round_trip5`] on a tokio stream.
async fn round_trip5_async(s: &mut ipckit::tokio::Stream, word: &[u8; 5]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(word).await.unwrap();
    let mut back = [0; 5];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, word);
}

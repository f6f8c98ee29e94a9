//! The connection state machine driven with arbitrary byte streams, splits,
//! half-closes, disconnects and JS-side actions over real unix sockets (a
//! property test; the lib's N-API side is not involved). The checks are
//! `testing.rs`'s, which `fuzz/fuzz_targets/engine.rs` shares.
use super::super::sys;
use super::super::testing::{open_fds, take_batch, Call, Model};
use super::*;
use proptest::prelude::*;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// Held by the tests that open descriptors: the property test counts the
/// process's descriptors, which a test running beside it would change.
static FDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config() -> Config {
    Config {
        max_header_size: 200,
        max_headers: 6,
        flags: 0,
        max_connections: 4,
        header_timeout: 0,
        drain_timeout: 0,
        max_drain_size: 300,
        write_high_water: 64,
        allow_half_open: false,
        sweep_ms: 1000,
        fd_ceiling: u64::MAX,
        resp_503: b"Status: 503\r\n\r\n".to_vec(),
    }
}

/// A request-ish byte stream: sometimes valid, sometimes damaged.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let valid =
        (0usize..40, proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(cl, extra)| {
            let block = format!("CONTENT_LENGTH\0{cl}\0SCGI\x001\0");
            let mut v = format!("{}:{},", block.len(), block).into_bytes();
            v.extend(std::iter::repeat_n(b'b', cl));
            v.extend(extra);
            v
        });
    let damaged = (valid.clone(), any::<usize>(), any::<u8>()).prop_map(|(mut v, at, byte)| {
        let at = at % v.len();
        v[at] = byte;
        v
    });
    prop_oneof![
        valid,
        damaged,
        proptest::collection::vec(any::<u8>(), 0..120)
    ]
}

#[derive(Debug, Clone)]
struct ConnPlan {
    bytes: Vec<u8>,
    splits: Vec<usize>,
    /// 0 keep open, 1 half-close, 2 close
    end: u8,
    /// what "JS" does with its request: 0 respond, 1 write+respond, 2 reset, 3 destroy, 4 resume, 5 nothing
    action: u8,
}

fn plan() -> impl Strategy<Value = ConnPlan> {
    (
        stream(),
        proptest::collection::vec(1usize..30, 0..6),
        0u8..3,
        0u8..6,
    )
        .prop_map(|(bytes, splits, end, action)| ConnPlan {
            bytes,
            splits,
            end,
            action,
        })
}

/// One call, checked by the model; a closed id is refused afterwards.
fn call(e: &mut Engine, m: &mut Model, id: i64, c: Call, data: &[u8]) -> u32 {
    let r = c.run(e, id, data);
    m.check_call(id, c, r);
    if r == R_CLOSED {
        m.check_call(id, Call::Respond, e.respond(id, b"late", false));
    }
    r
}

/// Polls, checks the batch, and lets "JS" act on the requests in it (the
/// `action` of the next plans, in dispatch order).
fn step(e: &mut Engine, m: &mut Model, plans: &[ConnPlan], next_plan: &mut usize) {
    e.poll();
    let b = take_batch(e);
    m.apply(&b);
    for ev in &b.events {
        if ev.ty == EV_CLOSE {
            m.check_call(ev.id, Call::Respond, e.respond(ev.id, b"late", false));
        }
        if ev.ty != EV_REQUEST {
            continue;
        }
        let action = plans.get(*next_plan).map_or(0, |pl| pl.action);
        *next_plan += 1;
        if !m.live.contains_key(&ev.id) {
            // Closed in the same wake-up (a FIN or reset came with it).
            continue;
        }
        match action {
            0 => {
                call(e, m, ev.id, Call::Respond, b"Status: 200 OK\r\n\r\nok");
            }
            1 if call(e, m, ev.id, Call::Write, &[b'x'; 100]) != R_CLOSED => {
                call(e, m, ev.id, Call::RespondClose, b"end");
            }
            2 => {
                call(e, m, ev.id, Call::Reset, b"");
            }
            3 => {
                call(e, m, ev.id, Call::Destroy, b"");
            }
            4 => {
                call(e, m, ev.id, Call::Resume, b"");
            }
            _ => {}
        }
    }
}

/// `close_listener` accepts what waits in the backlog before closing:
/// the fronts that connected before it get their requests served, none
/// is reset, and the next wake-up delivers them.
#[test]
fn close_listener_accepts_the_backlog_first() {
    let _fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
    let dir =
        std::env::temp_dir().join(format!("scgi-cl-{}-{}", std::process::id(), sys::now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let mut e = Engine::new(config()).unwrap();
    e.listen(sys::listen_unix(path.as_os_str().as_encoded_bytes(), 64).unwrap())
        .unwrap();
    let req = b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,";
    let mut clients: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(req).unwrap();
            c
        })
        .collect();
    // Nothing polled yet: the three wait in the backlog.
    e.close_listener();
    assert_eq!(e.open_count(), 3);
    assert!(
        UnixStream::connect(&path).is_err(),
        "the listener is closed"
    );
    e.poll();
    let b = take_batch(&mut e);
    let ids: Vec<i64> = b
        .events
        .iter()
        .filter(|ev| ev.ty == EV_REQUEST)
        .map(|ev| ev.id)
        .collect();
    assert_eq!(ids.len(), 3);
    for id in ids {
        assert_eq!(e.respond(id, b"Status: 200 OK\r\n\r\nok", true), R_CLOSED);
    }
    for c in &mut clients {
        let mut got = Vec::new();
        std::io::Read::read_to_end(c, &mut got).unwrap();
        assert_eq!(got, b"Status: 200 OK\r\n\r\nok");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_streams_and_disconnects(plans in proptest::collection::vec(plan(), 1..7)) {
        let _fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("scgi-sm-{}-{}", std::process::id(), sys::now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let fds = open_fds();
        let cfg = config();
        let mut m = Model::new(&cfg);
        let mut e = Engine::new(cfg).unwrap();
        e.listen(sys::listen_unix(path.as_os_str().as_encoded_bytes(), 64).unwrap()).unwrap();

        let mut clients = Vec::new();
        let mut next_plan = 0usize;
        for plan in &plans {
            let mut c = Some(UnixStream::connect(&path).unwrap());
            c.as_ref().unwrap().set_nonblocking(true).unwrap();
            let mut at: usize = 0;
            for s in plan.splits.iter().chain(std::iter::once(&usize::MAX)) {
                let end = at.saturating_add(*s).min(plan.bytes.len());
                if let (Some(sock), true) = (c.as_mut(), at < end) {
                    let _ = sock.write(&plan.bytes[at..end]);
                }
                at = end;
                if *s == usize::MAX {
                    // The end comes with the last bytes (one wake-up sees both).
                    match plan.end {
                        1 => {
                            let _ = c.as_ref().unwrap().shutdown(Shutdown::Write);
                        }
                        2 => c = None,
                        _ => {}
                    }
                }
                step(&mut e, &mut m, &plans, &mut next_plan);
            }
            step(&mut e, &mut m, &plans, &mut next_plan);
            if let Some(c) = c {
                clients.push(c);
            }
        }
        // Everyone goes away; requests still waiting for "JS" are dropped by it.
        drop(clients);
        for _ in 0..20 {
            step(&mut e, &mut m, &plans, &mut next_plan);
        }
        for (id, c) in m.live.clone() {
            // Only a request whose body JS has not read can outlive its
            // front (as on net, until requestTimeout): every other one
            // was reported closed.
            prop_assert!(c.body_left > 0, "a finished front not reported: {}", id);
            call(&mut e, &mut m, id, Call::Destroy, b"");
        }
        step(&mut e, &mut m, &plans, &mut next_plan);
        prop_assert_eq!(e.open_count(), 0, "connections left open");
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
        prop_assert_eq!(open_fds(), fds, "descriptors leaked");
    }
}

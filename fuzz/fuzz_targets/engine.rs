//! The native transport's connection state machine
//! (`crates/scgi-napi/src/transport/engine.rs`) driven over real sockets by a
//! program decoded from the input: engine limits, a unix or TCP listener,
//! then up to 96 operations: connect a client, write arbitrary bytes or a
//! request template (whole or cut) from a client, half-close, close or reset
//! a client, read what a client was sent, run the engine's poll step, move
//! its clock forward (the deadline sweep), and make the application's calls
//! (`respond`, `write`, pause, resume, reset, destroy, `peer`) on ids taken
//! from the batches, closed ones and ids that were never valid included.
//!
//! What must hold (`transport/testing.rs` has the model; this file adds what
//! needs the clients): no panic; batches well formed; a request's `out` is
//! the parser's for its bytes, and its bytes are the first bytes one client
//! sent (body pieces the next ones; distinct requests, distinct clients);
//! each dispatched id is closed at most once and refused (`R_STALE`) from
//! then on, as is an id that was never valid; `peer` is the client's own
//! address on TCP while the id is live, none on unix or for a closed id;
//! once the clients are gone and the application destroyed what it held, no
//! connection is left open; and after the engine is dropped, no descriptor
//! is left open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scgi_napi::transport::engine::{Config, Engine, EV_DATA, EV_REQUEST};
use scgi_napi::transport::sys;
use scgi_napi::transport::testing::{open_fds, take_batch, Batch, Call, Event, Model, SLOT_FACTOR};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The input, read front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.byte()) << 8 | u16::from(self.byte())
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

struct Client {
    /// None once closed.
    fd: Option<OwnedFd>,
    /// Its address on TCP (what `peer` must say).
    local: Option<SocketAddr>,
    /// The bytes the socket took, in order.
    sent: Vec<u8>,
    /// Its request is known to be this id's, and how far `sent` was delivered.
    dispatched: Option<(i64, usize)>,
}

/// What the application side knows about a dispatched id.
struct Known {
    /// The client it belongs to, when that is certain (on unix two clients
    /// that sent the same bytes cannot be told apart).
    client: Option<usize>,
}

struct Run {
    e: Engine,
    m: Model,
    tcp: bool,
    clients: Vec<Client>,
    /// Dispatched ids, in order (deterministic picks).
    ids: Vec<i64>,
    known: std::collections::HashMap<i64, Known>,
    /// The bytes of every request dispatched, in order.
    requests: Vec<Vec<u8>>,
}

fn config(inp: &mut Input, fds: usize) -> Config {
    let b = inp.byte();
    Config {
        max_header_size: [12, 40, 100, 300, 64 * 1024][usize::from(inp.byte() % 5)],
        max_headers: u32::from(inp.byte() % 8) + 1,
        flags: u32::from(b & 1),
        max_connections: usize::from(inp.byte() % 8) + 1,
        header_timeout: [0, 5, 1000][usize::from(inp.byte() % 3)],
        drain_timeout: [0, 5, 1000][usize::from(inp.byte() % 3)],
        max_drain_size: [0, 16, 1000][usize::from(inp.byte() % 3)],
        write_high_water: [0, 16, 64 * 1024][usize::from(inp.byte() % 3)],
        allow_half_open: b & 2 != 0,
        // The sweep runs when the input moves the clock, not by the timer.
        sweep_ms: 3_600_000,
        // Sometimes a ceiling a few descriptors above what is open now, so
        // connections past it get the 503 (BATCH_FD_LIMIT).
        fd_ceiling: if b & 4 != 0 {
            (fds + 4 + usize::from(inp.byte() % 8)) as u64
        } else {
            u64::MAX
        },
        resp_503: b"Status: 503 Service Unavailable\r\n\r\n".to_vec(),
    }
}

/// A header from the input: CONTENT_LENGTH first (as the parser wants), a
/// few more pairs, then part of a body (`cut` can end it anywhere).
fn template(inp: &mut Input) -> Vec<u8> {
    let cl = usize::from(inp.byte() % 48);
    let mut block = format!("CONTENT_LENGTH\0{cl}\0").into_bytes();
    if inp.byte() & 1 == 0 {
        block.extend_from_slice(b"SCGI\x001\0");
    }
    for _ in 0..inp.byte() % 4 {
        let name = [b'A' + inp.byte() % 4];
        let n = usize::from(inp.byte() % 6);
        let value = inp.bytes(n);
        block.extend_from_slice(&name);
        block.push(0);
        block.extend_from_slice(value);
        block.push(0);
    }
    let mut v = format!("{}:", block.len()).into_bytes();
    v.extend_from_slice(&block);
    v.push(b',');
    v.extend(std::iter::repeat_n(b'b', cl + usize::from(inp.byte() % 3)));
    let cut = usize::from(inp.byte());
    if cut < v.len() {
        v.truncate(cut);
    }
    v
}

impl Run {
    fn client(&mut self, inp: &mut Input) -> Option<&mut Client> {
        let n = self.clients.len();
        if n == 0 {
            return None;
        }
        let k = usize::from(inp.byte()) % n;
        self.clients.get_mut(k)
    }

    /// An id for an application call: one the batches gave (live or closed),
    /// or one that was never valid.
    fn pick_id(&self, inp: &mut Input) -> i64 {
        let b = inp.byte();
        if b < 224 && !self.ids.is_empty() {
            return self.ids[usize::from(b) % self.ids.len()];
        }
        match b % 3 {
            0 => -1 - i64::from(b),
            // A generation past the engine's 30 bits.
            1 => (1i64 << 30) * SLOT_FACTOR + i64::from(b % 8),
            _ => i64::MAX,
        }
    }

    fn deliver(&mut self, b: Batch) {
        self.m.apply(&b);
        for ev in &b.events {
            match ev.ty {
                EV_REQUEST => self.request(&b, ev),
                EV_DATA => {
                    let Some(&Known { client: Some(k) }) = self.known.get(&ev.id) else {
                        continue;
                    };
                    let data = &b.bytes[ev.payload[0] as usize..ev.payload[1] as usize];
                    let c = &mut self.clients[k];
                    let Some((_, pos)) = &mut c.dispatched else {
                        unreachable!()
                    };
                    assert_eq!(
                        c.sent.get(*pos..*pos + data.len()),
                        Some(data),
                        "body bytes the client did not send next"
                    );
                    *pos += data.len();
                }
                _ => {}
            }
        }
    }

    fn request(&mut self, b: &Batch, ev: &Event) {
        let id = ev.id;
        let req = b.request_bytes(ev);
        // The clients this request can be from: not known to be another
        // request's, and they sent these bytes first. Its own client is
        // always one of them; when it is the only one, that is certain.
        let candidates: Vec<usize> = (0..self.clients.len())
            .filter(|&k| {
                let c = &self.clients[k];
                c.dispatched.is_none() && c.sent.starts_with(req)
            })
            .collect();
        assert!(!candidates.is_empty(), "a request no client sent: {req:?}");
        let by_peer = self.e.peer(id).map(|addr| {
            assert!(self.tcp, "a peer address on a unix socket");
            let k = self.clients.iter().position(|c| c.local == Some(addr));
            let k = k.expect("the peer is no client");
            assert!(
                candidates.contains(&k),
                "the request is not the bytes its peer sent"
            );
            k
        });
        let exact = by_peer.or((candidates.len() == 1).then(|| candidates[0]));
        if let Some(k) = exact {
            self.clients[k].dispatched = Some((id, req.len()));
        }
        self.known.insert(id, Known { client: exact });
        self.ids.push(id);
        self.requests.push(req.to_vec());
        assert!(
            self.matching(),
            "requests that no set of distinct clients sent"
        );
    }

    /// Whether each request so far can be given a distinct client that sent
    /// its bytes first (two clients that sent the same bytes cannot be told
    /// apart on unix, but two requests need two clients).
    fn matching(&self) -> bool {
        fn augment(
            r: usize,
            reqs: &[Vec<u8>],
            clients: &[Client],
            seen: &mut [bool],
            owner: &mut [Option<usize>],
        ) -> bool {
            for (k, c) in clients.iter().enumerate() {
                if seen[k] || !c.sent.starts_with(&reqs[r]) {
                    continue;
                }
                seen[k] = true;
                if owner[k].is_none_or(|o| augment(o, reqs, clients, seen, owner)) {
                    owner[k] = Some(r);
                    return true;
                }
            }
            false
        }
        let mut owner = vec![None; self.clients.len()];
        (0..self.requests.len()).all(|r| {
            let mut seen = vec![false; self.clients.len()];
            augment(r, &self.requests, &self.clients, &mut seen, &mut owner)
        })
    }

    fn poll(&mut self) {
        self.e.poll();
        let b = take_batch(&mut self.e);
        self.deliver(b);
    }

    fn call(&mut self, id: i64, call: Call, data: &[u8]) {
        let r = call.run(&mut self.e, id, data);
        // As the binding does after each call.
        if self.e.take_wake_wanted() {
            self.e.wake();
        }
        self.m.check_call(id, call, r);
    }

    fn peer(&mut self, id: i64) {
        let p = self.e.peer(id);
        if !self.tcp || !self.m.live.contains_key(&id) {
            assert_eq!(p, None, "a peer for id {id} (unix, closed or never valid)");
            return;
        }
        // None once the peer reset (ENOTCONN); else the client's address.
        if let (Some(p), Some(Known { client: Some(k) })) = (p, self.known.get(&id)) {
            assert_eq!(Some(p), self.clients[*k].local, "peer of id {id}");
        }
    }
}

fn connect(path: &std::path::Path, port: u16) -> Option<(OwnedFd, Option<SocketAddr>)> {
    if port == 0 {
        let s = UnixStream::connect(path).ok()?;
        s.set_nonblocking(true).ok()?;
        Some((s.into(), None))
    } else {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_nonblocking(true).ok()?;
        let local = s.local_addr().ok();
        Some((s.into(), local))
    }
}

fn socket_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("scgi-fuzz-engine-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{}.sock", N.fetch_add(1, Ordering::Relaxed)))
}

fn run(data: &[u8]) {
    let mut inp = Input(data);
    let fds = open_fds();
    let cfg = config(&mut inp, fds);
    let tcp = inp.byte() & 1 == 1;
    let path = socket_path();
    let m = Model::new(&cfg);
    let mut e = Engine::new(cfg).expect("engine");
    let listener = if tcp {
        sys::listen_tcp("127.0.0.1".parse().unwrap(), 0, 64)
    } else {
        sys::listen_unix(path.as_os_str().as_encoded_bytes(), 64)
    };
    let port = e.listen(listener.expect("listen")).expect("listen");
    let mut r = Run {
        e,
        m,
        tcp,
        clients: Vec::new(),
        ids: Vec::new(),
        known: Default::default(),
        requests: Vec::new(),
    };
    let mut scratch = vec![0u8; 64 * 1024];
    for _ in 0..96 {
        if inp.0.is_empty() {
            break;
        }
        match inp.byte() % 12 {
            0 if r.clients.len() < 12 => {
                if let Some((fd, local)) = connect(&path, port) {
                    r.clients.push(Client {
                        fd: Some(fd),
                        local,
                        sent: Vec::new(),
                        dispatched: None,
                    });
                }
            }
            1 | 2 => {
                let data = if inp.byte() & 1 == 0 {
                    let n = usize::from(inp.byte() % 64);
                    inp.bytes(n).to_vec()
                } else {
                    template(&mut inp)
                };
                if let Some(Client {
                    fd: Some(fd), sent, ..
                }) = r.client(&mut inp)
                {
                    if let Ok(n) = sys::write(fd, &data) {
                        sent.extend_from_slice(&data[..n]);
                    }
                }
            }
            3 => {
                if let Some(Client { fd: Some(fd), .. }) = r.client(&mut inp) {
                    sys::shutdown_write(fd);
                }
            }
            4 => {
                if let Some(c) = r.client(&mut inp) {
                    c.fd = None;
                }
            }
            5 => {
                // RST on TCP (SO_LINGER 0), a plain close on unix.
                if let Some(fd) = r.client(&mut inp).and_then(|c| c.fd.take()) {
                    sys::close_with_reset(fd);
                }
            }
            6 => {
                if let Some(Client { fd: Some(fd), .. }) = r.client(&mut inp) {
                    while matches!(sys::read(fd, &mut scratch), Ok(n) if n > 0) {}
                }
            }
            7 | 8 => r.poll(),
            9 => {
                let id = r.pick_id(&mut inp);
                let call = [
                    Call::Respond,
                    Call::RespondClose,
                    Call::Write,
                    Call::Pause,
                    Call::Resume,
                    Call::Reset,
                    Call::Destroy,
                ][usize::from(inp.byte() % 7)];
                let n = usize::from(inp.byte()) * 8;
                let body = vec![b'r'; n];
                r.call(id, call, &body);
                if inp.byte() & 1 == 0 {
                    r.peer(id);
                }
            }
            10 => {
                let ms = u64::from(inp.u16() % 2048);
                r.e.advance_clock(ms);
                let b = take_batch(&mut r.e);
                r.deliver(b);
            }
            11 => match inp.byte() % 4 {
                0 => r.e.close_listener(),
                // Closes only connections that are not requests yet: no
                // dispatched id may be affected.
                _ => {
                    let live = r.m.live.len();
                    r.e.close_idle();
                    assert_eq!(r.m.live.len(), live);
                }
            },
            _ => r.poll(),
        }
    }
    // Everyone goes away; the application destroys what it still holds.
    for c in &mut r.clients {
        c.fd = None;
    }
    for _ in 0..4 {
        r.poll();
    }
    let mut live: Vec<i64> = r.m.live.keys().copied().collect();
    live.sort_unstable();
    for id in live {
        r.call(id, Call::Destroy, b"");
    }
    for _ in 0..4 {
        r.poll();
    }
    assert!(r.m.live.is_empty(), "dispatched ids still live");
    assert_eq!(
        r.e.open_count(),
        0,
        "connections left open after every client went away"
    );
    drop(r);
    let _ = std::fs::remove_file(&path);
    assert_eq!(open_fds(), fds, "descriptors leaked");
}

fuzz_target!(|data: &[u8]| run(data));

//! What the engine's property test (`engine/tests.rs`) and its
//! fuzz target (`fuzz/fuzz_targets/engine.rs`) share: decoding a batch with
//! checks that it is well formed, and [`Model`], the application side's view
//! of the dispatched connections, which checks every record and every call's
//! result against what the engine may do. Compiled for tests and with the
//! `testing` feature only. Failures panic (proptest and libFuzzer both
//! report a panic with its input).
//!
//! What the model holds the engine to:
//! - records are well formed: lengths tile the record array, byte ranges lie
//!   in the batch's bytes, payload sizes are those of their type;
//! - a request's `out` is `scgi_parser::parse_raw`'s for its bytes under the
//!   engine's limits (Complete, same slots), its body part is at most
//!   `CONTENT_LENGTH` (the `complete` flag says whether it is all of it);
//! - an id is dispatched once, never after it was refused; body pieces and
//!   drains come only for live ids, body pieces add up to `CONTENT_LENGTH`
//!   (the last one says so), a drain only after a `write` or `respond` said full;
//! - every dispatched id is closed at most once (a close record, or a call
//!   that returned `R_CLOSED`), and from then on every call on it is refused
//!   with `R_STALE`; a live id is never refused except by `respond`/`write`
//!   after the response ended.

use super::engine::{
    Config, Engine, BATCH_ACCEPTED, BATCH_FD_LIMIT, BATCH_HEADER, BATCH_OVERLOADED,
    CLOSE_BODY_TRUNCATED, CLOSE_DONE, EV_CLOSE, EV_DATA, EV_DRAIN, EV_REJECT, EV_REQUEST,
    REJECT_HEADER_TIMEOUT, R_CLOSED, R_FULL, R_OK, R_STALE,
};
use scgi_parser::{
    out_size, parse_raw, OUT_CL_HIGH, OUT_CL_LOW, OUT_CODE, OUT_HEADER_END, OUT_PAIRS,
    OUT_PAIR_COUNT, PAIR_STRIDE,
};
use std::collections::{HashMap, HashSet};

/// A connection id's factor: `id = generation * SLOT_FACTOR + slot`.
pub const SLOT_FACTOR: i64 = 1 << 22;

/// One record of a batch.
#[derive(Clone, Debug)]
pub struct Event {
    /// `EV_*`.
    pub ty: u32,
    /// The JS id.
    pub id: i64,
    /// The record's payload.
    pub payload: Vec<u32>,
}

/// A batch taken from the engine.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The bytes the records point into.
    pub bytes: Vec<u8>,
    /// The `BATCH_HEADER` counters.
    pub counters: [u32; BATCH_HEADER],
    /// The records, in order.
    pub events: Vec<Event>,
}

impl Batch {
    /// A request record's bytes (header and the body bytes read with it).
    pub fn request_bytes(&self, ev: &Event) -> &[u8] {
        &self.bytes[ev.payload[0] as usize..ev.payload[1] as usize]
    }
}

/// Takes (and clears) the engine's batch, checking that its record array is
/// well formed: every record's length stays inside the array, and byte
/// ranges of requests and body pieces inside the bytes.
pub fn take_batch(e: &mut Engine) -> Batch {
    let b = e.batch();
    let bytes = std::mem::take(&mut b.bytes);
    let recs = b.recs.clone();
    b.clear();
    assert!(recs.len() >= BATCH_HEADER, "batch without its counters");
    let mut counters = [0; BATCH_HEADER];
    counters.copy_from_slice(&recs[..BATCH_HEADER]);
    assert!(
        counters[BATCH_OVERLOADED] + counters[BATCH_FD_LIMIT] <= counters[BATCH_ACCEPTED],
        "more 503s than accepted connections: {counters:?}"
    );
    let mut events = Vec::new();
    let mut i = BATCH_HEADER;
    while i < recs.len() {
        assert!(i + 4 <= recs.len(), "a record header cut short at {i}");
        let n = recs[i + 3] as usize;
        assert!(
            i + 4 + n <= recs.len(),
            "a record of {n} words past the end at {i}"
        );
        let payload = recs[i + 4..i + 4 + n].to_vec();
        let ty = recs[i];
        match ty {
            EV_REQUEST | EV_DATA => {
                assert!(n >= 3, "record {ty} with {n} words");
                let (start, end) = (payload[0] as usize, payload[1] as usize);
                assert!(
                    start <= end && end <= bytes.len(),
                    "bytes {start}..{end} of {}",
                    bytes.len()
                );
                assert!(payload[2] <= 1, "flag {}", payload[2]);
                if ty == EV_DATA {
                    assert_eq!(n, 3, "a body piece of {n} words");
                    assert!(start < end, "an empty body piece");
                }
            }
            EV_REJECT | EV_CLOSE => assert_eq!(n, 1, "record {ty} with {n} words"),
            EV_DRAIN => assert_eq!(n, 0, "a drain with {n} words"),
            _ => panic!("unknown record type {ty} at {i}"),
        }
        let id = i64::from(recs[i + 2]) * SLOT_FACTOR + i64::from(recs[i + 1]);
        assert!(recs[i + 1] < 1 << 22, "slot {} out of range", recs[i + 1]);
        events.push(Event { ty, id, payload });
        i += 4 + n;
    }
    Batch {
        bytes,
        counters,
        events,
    }
}

/// A call the application makes on a connection id.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `respond(id, bytes, false)`: then half-close and drain.
    Respond,
    /// `respond(id, bytes, true)`: then close once written, if the whole request was read.
    RespondClose,
    /// `write(id, bytes)`.
    Write,
    /// `set_reading(id, false)`.
    Pause,
    /// `set_reading(id, true)`.
    Resume,
    /// `close_conn(id, true)`.
    Reset,
    /// `close_conn(id, false)`.
    Destroy,
}

impl Call {
    /// Makes the call on the engine; `data` for `Respond`/`Write`.
    pub fn run(self, e: &mut Engine, id: i64, data: &[u8]) -> u32 {
        match self {
            Call::Respond => e.respond(id, data, false),
            Call::RespondClose => e.respond(id, data, true),
            Call::Write => e.write(id, data),
            Call::Pause => e.set_reading(id, false),
            Call::Resume => e.set_reading(id, true),
            Call::Reset => e.close_conn(id, true),
            Call::Destroy => e.close_conn(id, false),
        }
    }
}

/// A dispatched connection the application still holds.
#[derive(Clone, Debug)]
pub struct Live {
    /// `respond` was accepted: the response is over.
    pub ended: bool,
    /// Body bytes not yet delivered.
    pub body_left: u64,
    /// A `write` said full and no drain record followed yet.
    pub drain_owed: bool,
}

/// The application's view of the engine's connections (see the module doc).
pub struct Model {
    max_header_size: u32,
    max_headers: u32,
    flags: u32,
    /// Dispatched and not closed.
    pub live: HashMap<i64, Live>,
    /// Dispatched, then closed (by a close record or a call).
    pub closed: HashSet<i64>,
    /// Refused before dispatch.
    pub rejected: HashSet<i64>,
}

impl Model {
    /// A model for an engine made with `cfg`.
    pub fn new(cfg: &Config) -> Model {
        Model {
            max_header_size: cfg.max_header_size,
            max_headers: cfg.max_headers,
            flags: cfg.flags,
            live: HashMap::new(),
            closed: HashSet::new(),
            rejected: HashSet::new(),
        }
    }

    fn close(&mut self, id: i64, why: &str) {
        assert!(
            self.live.remove(&id).is_some(),
            "{why}: id {id} is not live"
        );
        assert!(self.closed.insert(id), "{why}: id {id} closed twice");
    }

    /// Checks a batch's records against the model and applies them.
    pub fn apply(&mut self, b: &Batch) {
        for ev in &b.events {
            let (id, p) = (ev.id, &ev.payload);
            match ev.ty {
                EV_REQUEST => self.request(b, ev),
                EV_DATA => {
                    let len = u64::from(p[1] - p[0]);
                    let Some(c) = self.live.get_mut(&id) else {
                        panic!("a body piece for id {id}, not live");
                    };
                    assert!(
                        len <= c.body_left,
                        "a body piece past CONTENT_LENGTH ({id})"
                    );
                    c.body_left -= len;
                    assert_eq!(
                        p[2] == 1,
                        c.body_left == 0,
                        "the last flag of a body piece ({id})"
                    );
                }
                EV_REJECT => {
                    assert!(
                        (1..=REJECT_HEADER_TIMEOUT).contains(&p[0]),
                        "reject code {}",
                        p[0]
                    );
                    assert!(
                        !self.live.contains_key(&id) && !self.closed.contains(&id),
                        "a dispatched id {id} refused"
                    );
                    assert!(self.rejected.insert(id), "id {id} refused twice");
                }
                EV_CLOSE => {
                    let reason = p[0];
                    assert!(reason <= CLOSE_BODY_TRUNCATED, "close reason {reason}");
                    if let Some(c) = self.live.get(&id) {
                        if reason == CLOSE_BODY_TRUNCATED {
                            assert!(c.body_left > 0, "truncated with the whole body read ({id})");
                        }
                        if reason == CLOSE_DONE {
                            assert!(c.ended, "closed as done before any response ({id})");
                        }
                    }
                    self.close(id, "close record");
                }
                EV_DRAIN => {
                    let Some(c) = self.live.get_mut(&id) else {
                        panic!("a drain for id {id}, not live");
                    };
                    assert!(
                        std::mem::take(&mut c.drain_owed),
                        "a drain no write asked for ({id})"
                    );
                }
                ty => panic!("record type {ty}"),
            }
        }
    }

    fn request(&mut self, b: &Batch, ev: &Event) {
        let (id, p) = (ev.id, &ev.payload);
        assert!(
            !self.live.contains_key(&id) && !self.closed.contains(&id),
            "id {id} dispatched twice"
        );
        assert!(
            !self.rejected.contains(&id),
            "id {id} dispatched after it was refused"
        );
        let n = p.len();
        assert!(n >= 3 + OUT_PAIRS, "a request record of {n} words");
        let out = &p[3..];
        let pairs = out[OUT_PAIR_COUNT] as usize;
        assert!(
            pairs >= 1 && pairs <= self.max_headers as usize,
            "{pairs} pairs"
        );
        assert_eq!(
            n,
            3 + OUT_PAIRS + pairs * PAIR_STRIDE,
            "request record length"
        );
        assert_eq!(out[OUT_CODE], 0, "a request with an error code");
        let req = b.request_bytes(ev);
        let header_end = out[OUT_HEADER_END] as usize;
        assert!(
            header_end <= req.len(),
            "header end {header_end} past {}",
            req.len()
        );
        let cl = u64::from(out[OUT_CL_LOW]) | (u64::from(out[OUT_CL_HIGH]) << 32);
        let have = (req.len() - header_end) as u64;
        assert!(have <= cl, "more body bytes than CONTENT_LENGTH");
        assert_eq!(p[2] == 1, have == cl, "the complete flag");
        // The parser's own result for these bytes, header alone or with the body.
        for bytes in [&req[..header_end], req] {
            let mut mine = vec![0u32; out_size(self.max_headers)];
            let status = parse_raw(
                bytes,
                &mut mine,
                self.max_header_size,
                self.max_headers,
                self.flags,
            );
            assert_eq!(status, 0, "the parser does not find this request complete");
            assert_eq!(&mine[..out.len()], out, "out differs from the parser's");
        }
        self.live.insert(
            id,
            Live {
                ended: false,
                body_left: cl - have,
                drain_owed: false,
            },
        );
    }

    /// Checks the result `r` of `call` on `id` and applies it.
    pub fn check_call(&mut self, id: i64, call: Call, r: u32) {
        let Some(c) = self.live.get_mut(&id) else {
            assert_eq!(r, R_STALE, "{call:?} on id {id}, not live, was not refused");
            return;
        };
        let ok: &[u32] = match (call, c.ended) {
            (Call::Respond | Call::RespondClose | Call::Write, true) => &[R_STALE],
            (Call::Respond | Call::RespondClose, false) => &[R_OK, R_FULL, R_CLOSED],
            (Call::Write, false) => &[R_OK, R_FULL, R_CLOSED],
            (Call::Pause | Call::Resume, _) => &[R_OK],
            (Call::Reset | Call::Destroy, _) => &[R_CLOSED],
        };
        assert!(
            ok.contains(&r),
            "{call:?} on live id {id} (ended: {}) returned {r}",
            c.ended
        );
        match r {
            R_OK if call == Call::Respond || call == Call::RespondClose => c.ended = true,
            // The response is not all written yet: a drain record says when it is.
            R_FULL if call == Call::Respond || call == Call::RespondClose => {
                c.ended = true;
                c.drain_owed = true;
            }
            R_FULL => c.drain_owed = true,
            R_CLOSED => self.close(id, "call"),
            _ => {}
        }
    }
}

/// Descriptors open in this process (`/proc/self/fd`; the directory's own
/// descriptor is counted every time, so counts compare).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

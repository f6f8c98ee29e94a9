//! The contract between the engine and JavaScript
//! (`src/transport/native-engine.ts` is the other half): the batch of events
//! of one wake-up and its record layout, the results of the calls JS makes,
//! the operation codes of `transportControl`/`transportServer`, the layout of
//! a connection's JS id, and the order of the configuration array of
//! `transportCreate`. Every constant is listed in [`CONSTANTS`], which the
//! addon exports as `transportConstants()`; test/native-contract.test.ts
//! fails when one differs from the TypeScript side's.
//!
//! A batch is `BATCH_HEADER` counters (since the previous batch), then
//! records `[type, slot, gen, n, payload × n]`; a request's payload is
//! `[start, end, complete, out...]`, `out` being the parser's array for
//! `bytes[start..end]` (offsets relative to `start`).

use super::slab::Id;

macro_rules! contract {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $v:expr;)*) => {
        $($(#[$doc])* pub const $name: $ty = $v;)*
        /// Every constant of the contract, by name (`transportConstants()`).
        pub const CONSTANTS: &[(&str, u32)] = &[$((stringify!($name), $name as u32)),*];
    };
}

contract! {
    /// A record: a request (header complete): `[start, end, complete, out...]`.
    EV_REQUEST: u32 = 1;
    /// A record: a piece of a streamed body: `[start, end, last]`.
    EV_DATA: u32 = 2;
    /// A record: a connection refused before dispatch: `[code]` (parser codes 1-8, or the `REJECT_*` codes).
    EV_REJECT: u32 = 3;
    /// A record: a dispatched connection is gone: `[reason]` (`CLOSE_*`).
    EV_CLOSE: u32 = 4;
    /// A record: unwritten response bytes fell to zero after `write`
    /// returned "over the bound", or after `respond` returned `R_FULL`: the
    /// last response byte is written (the drain of unread request bytes
    /// starts then).
    EV_DRAIN: u32 = 5;

    /// Reject code: the front closed before the header was complete.
    REJECT_INCOMPLETE_HEADER: u32 = 9;
    /// Reject code: no complete header within `headerTimeout`.
    REJECT_HEADER_TIMEOUT: u32 = 10;

    /// Close reason: closed after the response (normal end).
    CLOSE_DONE: u32 = 0;
    /// Close reason: the front closed or reset before the response ended.
    CLOSE_ABORTED: u32 = 1;
    /// Close reason: the front closed before sending `CONTENT_LENGTH` body bytes.
    CLOSE_BODY_TRUNCATED: u32 = 2;

    /// Batch header slot: connections accepted.
    BATCH_ACCEPTED: usize = 0;
    /// Batch header slot: connections answered 503 because `maxConnections` were open.
    BATCH_OVERLOADED: usize = 1;
    /// Batch header slot: accept() failures (EMFILE and friends: accepting pauses, never spins).
    BATCH_ACCEPT_ERRORS: usize = 2;
    /// Batch header slot: connections answered 503 because their descriptor
    /// is near the process's limit (`fd_ceiling`).
    BATCH_FD_LIMIT: usize = 3;
    /// Number of header slots before the first record.
    BATCH_HEADER: usize = 4;

    /// Result of a call on a connection: refused (a closed or stale id, or
    /// a response already ended).
    R_STALE: u32 = 0;
    /// Result: accepted.
    R_OK: u32 = 1;
    /// Result: `write`: accepted, but the unwritten bytes are above the
    /// bound; `respond`: accepted, but not all written yet. `EV_DRAIN`
    /// follows (when they are).
    R_FULL: u32 = 2;
    /// Result: the connection is closed now (no `EV_CLOSE` follows).
    R_CLOSED: u32 = 3;

    /// A JS id is `gen * 2^SLOT_BITS + slot`.
    SLOT_BITS: u32 = 22;

    /// `transportControl` operation: stop reading the body for JS.
    OP_PAUSE: u32 = 0;
    /// `transportControl` operation: read the body for JS again.
    OP_RESUME: u32 = 1;
    /// `transportControl` operation: close now, with RST on TCP.
    OP_RESET: u32 = 2;
    /// `transportControl` operation: close now.
    OP_DESTROY: u32 = 3;

    /// `transportServer` operation: close the listening socket (after
    /// accepting its backlog).
    SERVER_OP_CLOSE_LISTENER: u32 = 0;
    /// `transportServer` operation: close the connections that sent nothing
    /// yet; returns how many.
    SERVER_OP_CLOSE_IDLE: u32 = 1;
    /// `transportServer` operation: returns the open connection count.
    SERVER_OP_OPEN_COUNT: u32 = 2;
    /// `transportServer` operation: the engine keeps the loop alive.
    SERVER_OP_REF: u32 = 3;
    /// `transportServer` operation: the engine does not keep the loop alive.
    SERVER_OP_UNREF: u32 = 4;
    /// `transportServer` operation: close everything (the instance is unusable after).
    SERVER_OP_CLOSE: u32 = 5;
}

/// The fields of `transportCreate`'s configuration array, in order (the
/// names of `NativeEngineOptions`, src/transport/native-engine.ts).
pub const CONFIG_FIELDS: [&str; 11] = [
    "maxHeaderSize",
    "maxHeadersCount",
    "strict",
    "maxConnections",
    "headerTimeout",
    "drainTimeout",
    "maxDrainSize",
    "writeHighWaterMark",
    "allowHalfOpen",
    "sweepInterval",
    "fdCeiling",
];

/// Events for JavaScript, gathered during one wake-up.
pub struct Batch {
    /// Request and body bytes the records point into.
    pub bytes: Vec<u8>,
    /// `BATCH_HEADER` counters, then records `[type, slot, gen, n, payload × n]`.
    pub recs: Vec<u32>,
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            bytes: Vec::with_capacity(64 * 1024),
            recs: vec![0; BATCH_HEADER],
        }
    }
    /// True when there is nothing to tell JavaScript.
    pub fn is_empty(&self) -> bool {
        self.recs.len() == BATCH_HEADER && self.recs.iter().all(|&v| v == 0)
    }
    /// Forgets the delivered events (keeps the allocations).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.recs.clear();
        self.recs.resize(BATCH_HEADER, 0);
    }
    /// Appends a record of type `ty` for connection `id`.
    pub(super) fn rec(&mut self, ty: u32, id: Id, payload: &[u32]) {
        self.recs
            .extend_from_slice(&[ty, id.slot, id.gen, payload.len() as u32]);
        self.recs.extend_from_slice(payload);
    }
    /// Appends a request record: `bytes` (header and the body bytes read
    /// with it, `complete` when that is the whole body) and `out`, the
    /// parser's words for them.
    pub(super) fn request(&mut self, id: Id, bytes: &[u8], complete: bool, out: &[u32]) {
        let base = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        // [start, end, complete, out...]: the request's bytes are
        // `bytes[start..end]` and `out` is the parser's array for them, as is
        // (offsets relative to `start`), so JS passes both views straight on.
        self.recs
            .extend_from_slice(&[EV_REQUEST, id.slot, id.gen, (3 + out.len()) as u32]);
        self.recs
            .extend_from_slice(&[base, base + bytes.len() as u32, u32::from(complete)]);
        self.recs.extend_from_slice(out);
    }
    /// Appends a body piece record.
    pub(super) fn data(&mut self, id: Id, bytes: &[u8], last: bool) {
        let base = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        self.rec(
            EV_DATA,
            id,
            &[base, base + bytes.len() as u32, u32::from(last)],
        );
    }
}

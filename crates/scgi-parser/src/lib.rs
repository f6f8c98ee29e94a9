//! A zero-allocation parser for the header of an [SCGI] request, shaped like
//! [`httparse`]: the caller owns the input buffer, the limits and the output
//! array; running out of input is a [`Status::Partial`], never an error; and
//! the result is byte offsets into the caller's buffer, so no string is made.
//!
//! This crate is the Rust half of the `scgi` npm package's parser: the
//! `scgi-napi` addon calls [`parse`] and hands the `out` array back to
//! JavaScript as is. The output layout ([`OUT_CODE`] .. [`PAIR_STRIDE`]), the
//! error codes ([`Error`]) and the known-name ids ([`names::KNOWN_NAMES`]) are
//! the contract of `src/parser/types.ts`, and the algorithm (including the
//! order of checks, which decides which error malformed input gets) is the one
//! of `src/parser/js.ts`:
//!
//! 1. Length prefix, byte by byte. Empty input: Partial. A digit after a
//!    leading `0`, an 8th digit, or a non-digit other than `:` after at least
//!    one digit: [`Error::BadNetstring`]. A running length above
//!    `max_header_size`: [`Error::HeaderTooLarge`] (as soon as the digits seen
//!    prove it). Out of bytes: Partial, need unknown.
//! 2. Until `len + digits + 2` bytes are present: Partial, need = that count.
//! 3. The byte after the block is not `,`: [`Error::BadNetstring`].
//! 4. Empty block: [`Error::MissingContentLength`].
//! 5. Pairs, left to right. No NUL after the name, or an empty name: [`Error::BadHeaders`].
//!    No NUL after the value: [`Error::BadHeaders`]. Pair count already
//!    `max_headers`: [`Error::TooManyHeaders`]. Pair 0 not named
//!    `CONTENT_LENGTH`: [`Error::MissingContentLength`]; its value empty, not
//!    all digits, or above 2^53-1: [`Error::BadContentLength`]. Strict, later
//!    pairs: a name equal (bytewise) to an earlier one: [`Error::DuplicateHeader`].
//! 6. Strict: no `SCGI` pair, or the first one's value is not `1`: [`Error::MissingScgi`].
//!
//! ```
//! use scgi_parser::{parse, out_size, Limits, Status};
//!
//! let req = b"24:CONTENT_LENGTH\x005\x00SCGI\x001\x00,hello";
//! let limits = Limits::default();
//! let mut out = vec![0u32; out_size(limits.max_headers)];
//! match parse(req, &limits, &mut out) {
//!     Ok(Status::Complete(head)) => {
//!         assert_eq!(head.content_length, 5);
//!         assert_eq!(&req[head.header_end..], b"hello");
//!         let pairs: Vec<_> = head.pairs(req, &out).map(|p| (p.name, p.value)).collect();
//!         assert_eq!(pairs, [(&b"CONTENT_LENGTH"[..], &b"5"[..]), (b"SCGI", b"1")]);
//!         assert_eq!(head.get(req, &out, b"SCGI"), Some(&b"1"[..]));
//!     }
//!     Ok(Status::Partial { need }) => { /* read more (need: total bytes, when known) */ }
//!     Err(e) => panic!("{}", e.as_str()),
//! }
//! ```
//!
//! [SCGI]: https://python.ca/scgi/protocol.txt
//! [`httparse`]: https://docs.rs/httparse
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod names;

use names::{known_id, ID_CONTENT_LENGTH, ID_SCGI};

/// `out` slot: the error code ([`Error::code`]) on error, else 0.
pub const OUT_CODE: usize = 0;
/// `out` slot: on Complete, the index of the body's first byte; on Partial, the
/// total byte count needed when known, else 0; on error, 0.
pub const OUT_HEADER_END: usize = 1;
/// `out` slot: the number of pairs (Complete only).
pub const OUT_PAIR_COUNT: usize = 2;
/// `out` slot: low 32 bits of `CONTENT_LENGTH` (Complete only).
pub const OUT_CL_LOW: usize = 3;
/// `out` slot: high bits of `CONTENT_LENGTH` (Complete only).
pub const OUT_CL_HIGH: usize = 4;
/// `out` slot: index of the first `SCGI` pair, or [`NO_INDEX`] (Complete only).
pub const OUT_SCGI_INDEX: usize = 5;
/// First pair slot. Pair `k` occupies `OUT_PAIRS + k * PAIR_STRIDE ..`: name
/// start, name end, value start, value end (byte offsets into the parsed
/// buffer, end exclusive), and the name's id in [`names::KNOWN_NAMES`] (0 = unknown).
pub const OUT_PAIRS: usize = 8;
/// Slots per pair in `out`.
pub const PAIR_STRIDE: usize = 5;
/// [`OUT_SCGI_INDEX`] when there is no `SCGI` pair.
pub const NO_INDEX: u32 = 0xffff_ffff;
/// Flag bit (in the N-API binding's `flags`) for [`Limits::strict`].
pub const FLAG_STRICT: u32 = 1;
/// Largest netstring length the grammar allows (7 digits).
pub const MAX_NETSTRING_LENGTH: u32 = 9_999_999;
/// Largest `CONTENT_LENGTH` accepted: JavaScript's `Number.MAX_SAFE_INTEGER`.
pub const MAX_CONTENT_LENGTH: u64 = (1 << 53) - 1;

/// Size of an `out` array able to hold `max_headers` pairs.
pub const fn out_size(max_headers: u32) -> usize {
    OUT_PAIRS + PAIR_STRIDE * max_headers as usize
}

/// Why a header can never become a valid request. The discriminants are the
/// numeric `Code` values of `src/parser/types.ts` (0 is "no error" and has no
/// variant).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Error {
    /// Netstring length not digits, a leading zero, more than 7 digits,
    /// missing `:` or missing `,`.
    BadNetstring = 1,
    /// Netstring length larger than `max_header_size`.
    HeaderTooLarge = 2,
    /// Header block not a sequence of NUL-terminated name/value pairs, or an empty name.
    BadHeaders = 3,
    /// The first pair is not `CONTENT_LENGTH` (or the block is empty).
    MissingContentLength = 4,
    /// `CONTENT_LENGTH` is not 1*DIGIT or is above 2^53-1.
    BadContentLength = 5,
    /// More pairs than `max_headers`.
    TooManyHeaders = 6,
    /// Strict: a name occurs twice.
    DuplicateHeader = 7,
    /// Strict: no `SCGI` pair with value `1`.
    MissingScgi = 8,
}

impl Error {
    /// Every error, in code order.
    pub const ALL: [Error; 8] = [
        Error::BadNetstring,
        Error::HeaderTooLarge,
        Error::BadHeaders,
        Error::MissingContentLength,
        Error::BadContentLength,
        Error::TooManyHeaders,
        Error::DuplicateHeader,
        Error::MissingScgi,
    ];

    /// The stable numeric code (same as `Code` in `src/parser/types.ts`).
    #[inline]
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The error for a numeric code, or `None` for 0 and unknown codes.
    pub const fn from_code(code: u32) -> Option<Error> {
        match code {
            1..=8 => Some(Error::ALL[code as usize - 1]),
            _ => None,
        }
    }

    /// The stable `ERR_SCGI_*` string (same as `CODE_NAMES` in `src/parser/types.ts`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::BadNetstring => "ERR_SCGI_BAD_NETSTRING",
            Error::HeaderTooLarge => "ERR_SCGI_HEADER_TOO_LARGE",
            Error::BadHeaders => "ERR_SCGI_BAD_HEADERS",
            Error::MissingContentLength => "ERR_SCGI_MISSING_CONTENT_LENGTH",
            Error::BadContentLength => "ERR_SCGI_BAD_CONTENT_LENGTH",
            Error::TooManyHeaders => "ERR_SCGI_TOO_MANY_HEADERS",
            Error::DuplicateHeader => "ERR_SCGI_DUPLICATE_HEADER",
            Error::MissingScgi => "ERR_SCGI_MISSING_SCGI",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

/// Limits chosen by the caller.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block (the netstring's length) accepted, in bytes.
    /// Values above [`MAX_NETSTRING_LENGTH`] act as that.
    pub max_header_size: u32,
    /// Largest number of name/value pairs accepted. `out` must hold this many
    /// pairs ([`out_size`]).
    pub max_headers: u32,
    /// Enforce the spec: unique names and `SCGI` = `1`.
    pub strict: bool,
}

impl Default for Limits {
    /// 64 KiB header block, 1000 pairs, not strict.
    fn default() -> Self {
        Limits {
            max_header_size: 64 * 1024,
            max_headers: 1000,
            strict: false,
        }
    }
}

/// Summary of a complete header (the scalar `out` slots, typed).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Index of the body's first byte in the parsed buffer.
    pub header_end: usize,
    /// Number of name/value pairs (written to `out`).
    pub pair_count: usize,
    /// The value of `CONTENT_LENGTH` (at most 2^53-1).
    pub content_length: u64,
    /// Index of the first `SCGI` pair, if any.
    pub scgi_index: Option<usize>,
}

/// Result of [`parse`] when the input is not (yet) invalid.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// A whole netstring is in the buffer.
    Complete(Head),
    /// More bytes are needed. `need` is the total byte count (from the start of
    /// the buffer) needed for the header when the length prefix is known.
    Partial {
        /// Total bytes needed, when known.
        need: Option<usize>,
    },
}

impl Status {
    /// The numeric status of `src/parser/types.ts`: 0 Complete, 1 Partial.
    pub const fn code(&self) -> u32 {
        match self {
            Status::Complete(_) => 0,
            Status::Partial { .. } => 1,
        }
    }
}

/// One name/value pair of a parsed header, borrowed from the input buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pair<'b> {
    /// The name's bytes (non-empty, no NUL).
    pub name: &'b [u8],
    /// The value's bytes (no NUL).
    pub value: &'b [u8],
    /// The name's id in [`names::KNOWN_NAMES`], 0 when not a known name.
    pub id: u32,
}

impl Pair<'_> {
    /// The name as a known-name `&'static str`, when it is one.
    pub fn known_name(&self) -> Option<&'static str> {
        names::known_name(self.id)
    }
}

/// Iterator over the pairs of a parsed header, in wire order. See [`Head::pairs`].
#[derive(Clone, Debug)]
pub struct Pairs<'b> {
    buf: &'b [u8],
    slots: core::slice::ChunksExact<'b, u32>,
}

impl<'b> Iterator for Pairs<'b> {
    type Item = Pair<'b>;

    #[inline]
    fn next(&mut self) -> Option<Pair<'b>> {
        let s = self.slots.next()?;
        Some(Pair {
            name: &self.buf[s[0] as usize..s[1] as usize],
            value: &self.buf[s[2] as usize..s[3] as usize],
            id: s[4],
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for Pairs<'_> {}

impl Head {
    /// The pairs, given the same `buf` and `out` that [`parse`] was called with.
    ///
    /// # Panics
    /// If `out` or `buf` are not the ones this `Head` came from (offsets out of range).
    pub fn pairs<'b>(&self, buf: &'b [u8], out: &'b [u32]) -> Pairs<'b> {
        let end = OUT_PAIRS + self.pair_count * PAIR_STRIDE;
        Pairs {
            buf,
            slots: out[OUT_PAIRS..end].chunks_exact(PAIR_STRIDE),
        }
    }

    /// The value of the first pair named `name`, if any.
    pub fn get<'b>(&self, buf: &'b [u8], out: &'b [u32], name: &[u8]) -> Option<&'b [u8]> {
        self.pairs(buf, out)
            .find(|p| p.name == name)
            .map(|p| p.value)
    }
}

/// Set of known ids (ids are < 128: `names::KNOWN_NAMES` has fewer entries).
#[derive(Default)]
struct KnownSet(u128);

impl KnownSet {
    /// Inserts `id`; returns whether it was already there.
    #[inline]
    fn insert(&mut self, id: u8) -> bool {
        let bit = 1u128 << id;
        let had = self.0 & bit != 0;
        self.0 |= bit;
        had
    }
}

const _: () = assert!(names::KNOWN_NAMES.len() <= 128);

/// Index of the first NUL in `hay`. Most fields are short, and `memchr`'s
/// setup (CPU-feature dispatch, alignment) costs more than the search on a
/// 10-byte name: look at the first 32 bytes 8 at a time (SWAR), then hand
/// long fields (cookies, URIs) to `memchr`.
#[inline(always)]
fn find_nul(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i < 32 {
        let Some(chunk) = hay.get(i..i + 8) else {
            return hay[i..].iter().position(|&b| b == 0).map(|k| i + k);
        };
        let x = u64::from_le_bytes(chunk.try_into().unwrap());
        // Nonzero iff some byte is 0; its lowest set bit is in the first zero byte.
        let t = x.wrapping_sub(LO) & !x & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(0, &hay[i..]).map(|k| i + k)
}

/// Parse the start of `buf` as an SCGI netstring header, writing the result
/// into `out` as laid out by the `OUT_*` constants, exactly as the TypeScript
/// parser does (on `Ok(Partial)`: [`OUT_CODE`] = 0, [`OUT_HEADER_END`] = need or
/// 0; on `Err`: [`OUT_CODE`] = the code, [`OUT_HEADER_END`] = 0, pair slots
/// written so far are left as they are).
///
/// Pure: the result depends only on the bytes and the limits, and an input
/// that is `Err` stays `Err` (same error) however many bytes are appended.
/// Allocates nothing.
///
/// # Panics
/// If `out.len() < out_size(limits.max_headers)` and the header has enough
/// pairs to need the missing slots (use [`out_size`]).
pub fn parse(buf: &[u8], limits: &Limits, out: &mut [u32]) -> Result<Status, Error> {
    assert!(
        out.len() >= OUT_PAIRS,
        "scgi_parser::parse: out must have at least OUT_PAIRS slots"
    );
    out[OUT_CODE] = 0;
    out[OUT_HEADER_END] = 0;
    match parse_inner(buf, limits, out) {
        Ok(s) => Ok(s),
        Err(e) => {
            out[OUT_CODE] = e.code();
            Err(e)
        }
    }
}

#[inline(always)]
fn parse_inner(buf: &[u8], limits: &Limits, out: &mut [u32]) -> Result<Status, Error> {
    let n = buf.len();
    let limit = limits.max_header_size.min(MAX_NETSTRING_LENGTH) as usize;

    // 1. length prefix
    let mut i = 0usize;
    let mut len = 0usize;
    loop {
        let Some(&c) = buf.get(i) else {
            return Ok(Status::Partial { need: None });
        };
        if c.is_ascii_digit() {
            if i == 1 && buf[0] == b'0' {
                return Err(Error::BadNetstring);
            }
            if i == 7 {
                return Err(Error::BadNetstring);
            }
            len = len * 10 + (c - b'0') as usize;
            i += 1;
            if len > limit {
                return Err(Error::HeaderTooLarge);
            }
            continue;
        }
        if c == b':' && i > 0 {
            break;
        }
        return Err(Error::BadNetstring);
    }

    // 2. whole block present?
    let block_start = i + 1;
    let block_end = block_start + len;
    let need = block_end + 1;
    if n < need {
        out[OUT_HEADER_END] = need as u32;
        return Ok(Status::Partial { need: Some(need) });
    }
    // 3.
    if buf[block_end] != b',' {
        return Err(Error::BadNetstring);
    }
    // 4.
    if len == 0 {
        return Err(Error::MissingContentLength);
    }

    // 5. pairs
    let strict = limits.strict;
    let max_headers = limits.max_headers as usize;
    let block = &buf[..block_end];
    let mut seen = KnownSet::default();
    let mut pos = block_start;
    let mut pairs = 0usize;
    let mut scgi_index: Option<usize> = None;
    let mut content_length: u64 = 0;
    let mut o = OUT_PAIRS;
    while pos < block_end {
        let name_end = match find_nul(&block[pos..]) {
            Some(0) | None => return Err(Error::BadHeaders),
            Some(k) => pos + k,
        };
        let value_start = name_end + 1;
        let value_end = match find_nul(&block[value_start..]) {
            None => return Err(Error::BadHeaders),
            Some(k) => value_start + k,
        };
        if pairs == max_headers {
            return Err(Error::TooManyHeaders);
        }
        let name = &block[pos..name_end];
        let id = known_id(name);
        if pairs == 0 {
            if id != ID_CONTENT_LENGTH {
                return Err(Error::MissingContentLength);
            }
            let value = &block[value_start..value_end];
            if value.is_empty() {
                return Err(Error::BadContentLength);
            }
            for &c in value {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    return Err(Error::BadContentLength);
                }
                content_length = content_length * 10 + d as u64;
                if content_length > MAX_CONTENT_LENGTH {
                    return Err(Error::BadContentLength);
                }
            }
            if strict {
                seen.insert(id);
            }
        } else if strict {
            if id != 0 {
                if seen.insert(id) {
                    return Err(Error::DuplicateHeader);
                }
            } else {
                // Earlier unknown names are in `out` already: compare bytes.
                let mut p = OUT_PAIRS;
                while p < o {
                    if out[p + 4] == 0 && &block[out[p] as usize..out[p + 1] as usize] == name {
                        return Err(Error::DuplicateHeader);
                    }
                    p += PAIR_STRIDE;
                }
            }
        }
        if id == ID_SCGI && scgi_index.is_none() {
            scgi_index = Some(pairs);
        }
        let slot = &mut out[o..o + PAIR_STRIDE];
        slot[0] = pos as u32;
        slot[1] = name_end as u32;
        slot[2] = value_start as u32;
        slot[3] = value_end as u32;
        slot[4] = id as u32;
        o += PAIR_STRIDE;
        pairs += 1;
        pos = value_end + 1;
    }

    // 6.
    if strict {
        let Some(k) = scgi_index else {
            return Err(Error::MissingScgi);
        };
        let v = OUT_PAIRS + k * PAIR_STRIDE + 2;
        if &block[out[v] as usize..out[v + 1] as usize] != b"1" {
            return Err(Error::MissingScgi);
        }
    }

    out[OUT_HEADER_END] = need as u32;
    out[OUT_PAIR_COUNT] = pairs as u32;
    out[OUT_CL_LOW] = content_length as u32;
    out[OUT_CL_HIGH] = (content_length >> 32) as u32;
    out[OUT_SCGI_INDEX] = scgi_index.map_or(NO_INDEX, |k| k as u32);
    Ok(Status::Complete(Head {
        header_end: need,
        pair_count: pairs,
        content_length,
        scgi_index,
    }))
}

/// [`parse`] with the N-API binding's calling convention: flags instead of
/// [`Limits`], and the numeric status (0 Complete, 1 Partial, 2 Error) instead
/// of a `Result`. `out` receives exactly what the TypeScript parser writes.
///
/// # Panics
/// As [`parse`]; check `out.len() >= out_size(max_headers)` first.
#[inline]
pub fn parse_raw(
    buf: &[u8],
    out: &mut [u32],
    max_header_size: u32,
    max_headers: u32,
    flags: u32,
) -> u32 {
    let limits = Limits {
        max_header_size,
        max_headers,
        strict: flags & FLAG_STRICT != 0,
    };
    match parse(buf, &limits, out) {
        Ok(s) => s.code(),
        Err(_) => 2,
    }
}

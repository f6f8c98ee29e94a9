//! N-API binding of `scgi-parser` for the `scgi` npm package: a thin wrapper
//! that crosses the boundary with numbers only. `parse` borrows the caller's
//! `Buffer`/`Uint8Array` and `Uint32Array` in place (no copy) and writes the
//! `OUT_*` slots of `src/parser/types.ts`; it creates no JS strings or objects.
#![deny(clippy::all)]

use napi::{Error, Result, Status};
use napi_derive::napi;
use scgi_parser::{out_size, parse_raw};

/// Parse the start of `buf` as an SCGI header into `out` (see `OUT_*` in
/// `src/parser/types.ts`). Returns 0 Complete, 1 Partial, 2 Error. Throws a
/// `RangeError`-like `InvalidArg` error, writing nothing, when `out` is
/// shorter than `outSize(maxHeaders)`.
#[napi]
pub fn parse(buf: &[u8], out: &mut [u32], max_header_size: u32, max_headers: u32, flags: u32) -> Result<u32> {
    if out.len() < out_size(max_headers) {
        return Err(Error::new(
            Status::InvalidArg,
            format!("out has {} slots, needs outSize({max_headers}) = {}", out.len(), out_size(max_headers)),
        ));
    }
    Ok(parse_raw(buf, out, max_header_size, max_headers, flags))
}

/// Does nothing: measures the bare cost of an N-API call.
#[napi]
pub fn noop() -> u32 {
    0
}

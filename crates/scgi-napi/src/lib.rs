//! N-API binding of `scgi-parser` for the `scgi` npm package: a thin wrapper
//! that crosses the boundary with numbers only. `parse` borrows the caller's
//! `Buffer`/`Uint8Array` and `Uint32Array` in place (no copy) and writes the
//! `OUT_*` slots of `src/parser/types.ts`; it creates no JS strings or objects.
#![deny(clippy::all)]

use napi::bindgen_prelude::Uint32ArraySlice;
use napi::{Error, Result, Status};
use napi_derive::napi;
use scgi_parser::{out_size, parse_raw};

/// Parse the start of `buf` as an SCGI header into `out` (see `OUT_*` in
/// `src/parser/types.ts`). Returns 0 Complete, 1 Partial, 2 Error. Throws (code
/// `InvalidArg`), writing nothing, when `out` is shorter than
/// `outSize(maxHeaders)` or shares memory with `buf`, or when `buf` is not a
/// `Uint8Array` (a `Buffer` is one) or `out` not a `Uint32Array`.
#[napi]
pub fn parse(buf: &[u8], mut out: Uint32ArraySlice, max_header_size: u32, max_headers: u32, flags: u32) -> Result<u32> {
    // Refuse `out` and `buf` viewing the same bytes: `&mut [u32]` must not alias `&[u8]`.
    let (b0, b1) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let (o0, o1) = (out.as_ptr() as usize, out.as_ptr() as usize + out.len() * 4);
    if b0 < o1 && o0 < b1 {
        return Err(Error::new(Status::InvalidArg, "out and buf must not share memory".to_owned()));
    }
    // SAFETY: `out` views the Uint32Array's memory, which stays alive for the
    // whole (synchronous) call because the argument keeps it reachable; no JS
    // can run while we hold the slice (the call blocks the isolate's thread),
    // the slice does not outlive this function, and it does not overlap `buf`
    // (checked above), so it is the only live reference to those bytes.
    let out: &mut [u32] = unsafe { out.as_mut() };
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

//! The N-API binding of `scgi-parser` (and the module's registration): a
//! thin wrapper that crosses the boundary with numbers only. `parse` borrows
//! the caller's `Buffer`/`Uint8Array` and `Uint32Array` in place (no copy)
//! and writes the `OUT_*` slots of `src/parser/types.ts`; it creates no JS strings or objects
//! (except an Error when it throws).
//!
//! `parse` is a raw N-API callback rather than a `#[napi]` function: on a
//! 782-byte nginx request the `#[napi]` wrapper's argument handling cost about
//! 100 ns more per call than the same N-API calls made directly (bench/RESULTS.md),
//! more than the Rust parse of the whole block takes on small requests.
//!
//! No panic crosses into C: the parse runs inside `catch_unwind`, and the rest
//! of the callback does no indexing or arithmetic that can panic.

use crate::js::{args, register, throw, typed_array, Typed};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use scgi_parser::{out_size, parse_raw};
use std::ffi::CStr;
use std::ptr::null_mut;

/// `parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize, maxHeaders, flags): number`
/// (0 Complete, 1 Partial, 2 Error). Throws a TypeError for wrong argument
/// types or a typed array over a `SharedArrayBuffer`, and a RangeError,
/// writing nothing, when `out` is shorter than `outSize(maxHeaders)` or shares
/// memory with `buf`.
///
/// # Safety
/// Called by N-API only, with the `env` and `info` of this call.
unsafe extern "C" fn parse_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    const USAGE: &CStr = c"parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number)";
    const SHARED: &CStr = c"parse: buf and out must not be views of a SharedArrayBuffer";
    // SAFETY: `env`/`info` are this call's.
    let Some([a_buf, a_out, a_size, a_count, a_flags]) = (unsafe { args::<5>(env, info) }) else {
        // SAFETY: `env` is this call's.
        return unsafe { throw(env, false, USAGE) };
    };
    // SAFETY: `env` is this call's and the values are its arguments.
    let (b, o) = unsafe {
        (
            typed_array(env, a_buf, sys::TypedarrayType::uint8_array),
            typed_array(env, a_out, sys::TypedarrayType::uint32_array),
        )
    };
    let ((buf_ptr, buf_len), (out_ptr, out_len)) = match (b, o) {
        (Typed::Ok(bp, bl), Typed::Ok(op, ol)) => ((bp, bl), (op, ol)),
        (Typed::WrongType, _) | (_, Typed::WrongType) => {
            // SAFETY: `env` is this call's.
            return unsafe { throw(env, false, USAGE) };
        }
        _ => {
            // SAFETY: `env` is this call's.
            return unsafe { throw(env, false, SHARED) };
        }
    };
    let mut nums = [0u32; 3];
    for (n, arg) in nums.iter_mut().zip([a_size, a_count, a_flags]) {
        // SAFETY: `env` is this call's, `arg` one of its arguments; `n` is a
        // valid out-pointer; N-API checks the value is a number.
        if unsafe { sys::napi_get_value_uint32(env, arg, n) } != sys::Status::napi_ok {
            // SAFETY: `env` is this call's.
            return unsafe { throw(env, false, USAGE) };
        }
    }
    let [max_header_size, max_headers, flags] = nums;
    if out_len < out_size(max_headers) {
        // SAFETY: `env` is this call's.
        return unsafe { throw(env, true, c"out is shorter than outSize(maxHeaders)") };
    }
    // Address ranges (wrapping: the arrays' memory is real, so this never
    // wraps, but nothing here can panic either).
    let (b0, b1) = (buf_ptr as usize, (buf_ptr as usize).wrapping_add(buf_len));
    let o0 = out_ptr as usize;
    let o1 = o0.wrapping_add(out_len.wrapping_mul(4));
    if buf_len > 0 && b0 < o1 && o0 < b1 {
        // SAFETY: `env` is this call's.
        return unsafe { throw(env, true, c"out and buf must not share memory") };
    }
    // SAFETY: both typed arrays are arguments of this synchronous call, so
    // their memory stays alive and no JS runs on this thread while the slices
    // exist; neither is over a SharedArrayBuffer (checked above), so no other
    // thread can access their bytes either; the slices do not outlive this
    // function; a Uint32Array's data is 4-byte aligned; the two ranges do not
    // overlap (checked above), so `out` is the only live reference to its
    // bytes. Empty arrays may report a null or dangling pointer, so they get a
    // literal empty slice.
    let (buf, out): (&[u8], &mut [u32]) = unsafe {
        (
            if buf_len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(buf_ptr, buf_len)
            },
            if out_len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(out_ptr.cast::<u32>(), out_len)
            },
        )
    };
    // `parse_raw` cannot panic here (out is big enough), but never unwind into C.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        parse_raw(buf, out, max_header_size, max_headers, flags)
    })) else {
        // SAFETY: `env` is this call's.
        return unsafe { throw(env, false, c"scgi native parser panicked") };
    };
    let mut ret = null_mut();
    // SAFETY: `env` is this call's; `ret` is a valid out-pointer.
    let status = unsafe { sys::napi_create_uint32(env, result, &mut ret) };
    if status != sys::Status::napi_ok {
        // `out` is written but the status number could not be made: throw
        // rather than return `undefined`, which a caller would misread.
        // SAFETY: `env` is this call's.
        return unsafe { throw(env, false, c"scgi native parser: napi_create_uint32 failed") };
    }
    ret
}

/// Registers `parse` (a raw callback, see the crate doc) and, on Linux, the
/// transport's functions on the exports.
#[napi(module_exports)]
pub fn init(exports: Object) -> Result<()> {
    register(exports.env(), exports.raw(), &[("parse", parse_cb)])
        .map_err(|e| Error::new(Status::GenericFailure, e))?;
    #[cfg(target_os = "linux")]
    crate::transport::binding::register(exports.env(), exports.raw())
        .map_err(|e| Error::new(Status::GenericFailure, e))?;
    #[cfg(target_os = "linux")]
    crate::diag::register(exports.env(), exports.raw())
        .map_err(|e| Error::new(Status::GenericFailure, e))?;
    Ok(())
}

//! N-API binding of `scgi-parser` for the `scgi` npm package: a thin wrapper
//! that crosses the boundary with numbers only. `parse` borrows the caller's
//! `Buffer`/`Uint8Array` and `Uint32Array` in place (no copy) and writes the
//! `OUT_*` slots of `src/parser/types.ts`; it creates no JS strings or objects
//! (except an Error when it throws).
//!
//! `parse` is a raw N-API callback rather than a `#[napi]` function: on a
//! 782-byte nginx request the `#[napi]` wrapper's argument handling cost about
//! 100 ns more per call than the same N-API calls made directly (bench/RESULTS.md),
//! more than the Rust parse of the whole block takes on small requests.
//! `noop` stays `#[napi]` and `noopRaw` is the raw equivalent, to measure both.
#![deny(clippy::all)]

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use scgi_parser::{out_size, parse_raw};
use std::ffi::CStr;
use std::ptr::null_mut;

/// Does nothing: measures the bare cost of a `#[napi]` call.
#[napi]
pub fn noop() -> u32 {
    0
}

unsafe fn throw(env: sys::napi_env, range: bool, msg: &CStr) -> sys::napi_value {
    // SAFETY: env is the callback's env; both strings are NUL-terminated.
    unsafe {
        if range {
            sys::napi_throw_range_error(env, c"ERR_OUT_OF_RANGE".as_ptr(), msg.as_ptr());
        } else {
            sys::napi_throw_type_error(env, c"ERR_INVALID_ARG_TYPE".as_ptr(), msg.as_ptr());
        }
    }
    null_mut()
}

/// `(ptr, length in elements)` of a typed array of type `want`, or None.
unsafe fn typed_array(
    env: sys::napi_env,
    value: sys::napi_value,
    want: i32,
) -> Option<(*mut u8, usize)> {
    let (mut ty, mut len, mut data, mut offset) = (-1, 0usize, null_mut(), 0usize);
    // SAFETY: all out-pointers are valid locals; N-API checks `value` is a TypedArray.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut ty,
            &mut len,
            &mut data,
            null_mut(),
            &mut offset,
        )
    };
    if status != sys::Status::napi_ok || ty != want {
        return None;
    }
    Some((data.cast(), len))
}

/// `parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize, maxHeaders, flags): number`
/// (0 Complete, 1 Partial, 2 Error). Throws a TypeError for wrong argument
/// types and a RangeError, writing nothing, when `out` is shorter than
/// `outSize(maxHeaders)` or shares memory with `buf`.
unsafe extern "C" fn parse_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    const USAGE: &CStr = c"parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number)";
    let mut argc = 5usize;
    let mut argv = [null_mut(); 5];
    // SAFETY: argv has room for argc values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    if status != sys::Status::napi_ok || argc < 5 {
        return unsafe { throw(env, false, USAGE) };
    }
    // SAFETY: argv[0..5] are values of this call.
    let (Some((buf_ptr, buf_len)), Some((out_ptr, out_len))) = (unsafe {
        (
            typed_array(env, argv[0], sys::TypedarrayType::uint8_array),
            typed_array(env, argv[1], sys::TypedarrayType::uint32_array),
        )
    }) else {
        return unsafe { throw(env, false, USAGE) };
    };
    let mut nums = [0u32; 3];
    for (k, n) in nums.iter_mut().enumerate() {
        // SAFETY: `n` is a valid out-pointer; N-API checks the value is a number.
        if unsafe { sys::napi_get_value_uint32(env, argv[2 + k], n) } != sys::Status::napi_ok {
            return unsafe { throw(env, false, USAGE) };
        }
    }
    let [max_header_size, max_headers, flags] = nums;
    if out_len < out_size(max_headers) {
        return unsafe { throw(env, true, c"out is shorter than outSize(maxHeaders)") };
    }
    let (b0, b1) = (buf_ptr as usize, buf_ptr as usize + buf_len);
    let (o0, o1) = (out_ptr as usize, out_ptr as usize + out_len * 4);
    if buf_len > 0 && b0 < o1 && o0 < b1 {
        return unsafe { throw(env, true, c"out and buf must not share memory") };
    }
    // SAFETY: both typed arrays are arguments of this synchronous call, so their
    // memory stays alive and no JS runs while the slices exist; the slices do
    // not outlive this function; a Uint32Array's data is 4-byte aligned; the
    // two ranges do not overlap (checked above), so `out` is the only live
    // reference to its bytes. Empty arrays may report a null or dangling
    // pointer, so they get a literal empty slice.
    let buf: &[u8] = if buf_len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(buf_ptr, buf_len) }
    };
    let out: &mut [u32] = if out_len == 0 {
        &mut []
    } else {
        unsafe { std::slice::from_raw_parts_mut(out_ptr.cast::<u32>(), out_len) }
    };
    // `parse_raw` cannot panic here (out is big enough), but never unwind into C.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        parse_raw(buf, out, max_header_size, max_headers, flags)
    })) else {
        return unsafe { throw(env, false, c"scgi native parser panicked") };
    };
    let mut ret = null_mut();
    // SAFETY: `ret` is a valid out-pointer.
    unsafe { sys::napi_create_uint32(env, result, &mut ret) };
    ret
}

/// Same as `noop`, as a raw N-API callback.
unsafe extern "C" fn noop_raw_cb(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut ret = null_mut();
    // SAFETY: `ret` is a valid out-pointer.
    unsafe { sys::napi_create_uint32(env, 0, &mut ret) };
    ret
}

/// Registers the raw callbacks next to the `#[napi]` exports.
#[napi(module_exports)]
pub fn init(mut exports: Object) -> Result<()> {
    type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let callbacks: [(&str, Callback); 2] = [("parse", parse_cb), ("noopRaw", noop_raw_cb)];
    for (name, cb) in callbacks {
        let mut func = null_mut();
        // SAFETY: the name pointer/length pair is valid; `cb` has the N-API callback signature.
        let status = unsafe {
            sys::napi_create_function(
                exports.env(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(cb),
                null_mut(),
                &mut func,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(
                Status::GenericFailure,
                format!("napi_create_function({name}) failed"),
            ));
        }
        // SAFETY: `func` is the function value just created in this env.
        exports.set_named_property(name, unsafe {
            Unknown::from_raw_unchecked(exports.env(), func)
        })?;
    }
    Ok(())
}

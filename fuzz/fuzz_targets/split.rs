//! Prefix stability: parsing `data[..k]` for every split point `k` agrees with
//! parsing all of `data`, as a server that re-parses its growing buffer after
//! each read relies on.
//!
//! Walking `k` from 0 to `data.len()`:
//! - a prefix is Partial until some `k0`, and from `k0` on the result is final:
//!   every longer prefix gives the same `Complete` head (and the same `out`
//!   slots) or the same `Error`, so the whole buffer's result never changes
//!   with more bytes;
//! - `Partial { need: None }` only comes before any known need; once the need
//!   is known it is the same number at every later Partial, above `k`, and the
//!   result is final by then (`k0 <= need`); a `Complete` arrives exactly at
//!   `k0 == need == header_end`;
//! - `out` says what the return value says (code and need/header end slots).
//!
//! Past the final result only the next 16 split points and the whole buffer
//! are parsed (the rest would make every run quadratic in the body length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scgi_parser::*;
use scgi_parser_fuzz::CONFIGS;

fn check(data: &[u8], limits: &Limits) {
    let size = out_size(limits.max_headers);
    let mut out = vec![0u32; size];
    let mut first_out = vec![0u32; size];
    let mut known_need: Option<usize> = None;
    let mut fin: Option<(usize, Result<Status, Error>)> = None;
    // Every split point up to the final result, the next few, then the whole
    // buffer (the bytes in between only add cost: the whole buffer's result
    // is compared with the final one, and the mutator varies those bytes).
    for k in 0..=data.len() {
        if matches!(fin, Some((k0, _)) if k > k0 + 16 && k < data.len()) {
            continue;
        }
        let r = parse(&data[..k], limits, &mut out);
        match r {
            Ok(Status::Partial { need }) => {
                assert!(
                    fin.is_none(),
                    "k={k}: Partial after the final result {fin:?}"
                );
                assert_eq!(out[OUT_CODE], 0);
                assert_eq!(out[OUT_HEADER_END] as usize, need.unwrap_or(0));
                match (need, known_need) {
                    (None, Some(n)) => panic!("k={k}: need forgotten (was {n})"),
                    (Some(n), Some(m)) => assert_eq!(n, m, "k={k}: need changed"),
                    (Some(n), None) => known_need = Some(n),
                    (None, None) => {}
                }
                if let Some(n) = need {
                    assert!(n > k, "k={k}: need {n} already present");
                }
            }
            Ok(Status::Complete(_)) | Err(_) => match &fin {
                None => {
                    if let Some(n) = known_need {
                        assert!(k <= n, "k={k}: still Partial past the need {n}");
                    }
                    if let Ok(Status::Complete(head)) = r {
                        assert_eq!(head.header_end, k, "Complete before/after its end");
                        if let Some(n) = known_need {
                            assert_eq!(n, k, "Complete not at the need");
                        }
                        assert_eq!(out[OUT_HEADER_END] as usize, k);
                    } else {
                        assert_eq!(out[OUT_HEADER_END], 0);
                    }
                    assert_eq!(out[OUT_CODE], r.err().map_or(0, Error::code));
                    first_out.copy_from_slice(&out);
                    fin = Some((k, r));
                }
                Some((k0, f)) => {
                    assert_eq!(&r, f, "k={k}: result changed since k={k0}");
                    match r {
                        Ok(Status::Complete(head)) => {
                            let used = OUT_PAIRS + head.pair_count * PAIR_STRIDE;
                            assert_eq!(
                                out[..used],
                                first_out[..used],
                                "k={k}: out changed since k={k0}"
                            );
                        }
                        // An error writes the code and header-end slots only.
                        _ => assert_eq!(out[..2], first_out[..2]),
                    }
                }
            },
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for limits in &CONFIGS {
        check(data, limits);
    }
});

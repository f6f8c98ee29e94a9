//! The typed API (`parse` → `Result<Status, Error>`, `Head`, `Head::pairs`,
//! `Head::get`) agrees with the raw offsets API (`parse_raw` → status number
//! and the `out` slots the N-API binding hands to JavaScript), and what both
//! say is a correct reading of the bytes:
//! - same status, and the same `out` array from the same starting contents
//!   (filled with a pattern, so an unwritten or stray slot shows);
//! - the `OUT_*` slots hold what the typed result holds;
//! - on Complete: the pairs tile the netstring block exactly (name NUL value
//!   NUL, no gap, ending at the `,`), names are non-empty and NUL-free, ids are
//!   `known_id(name)`, pair 0 is `CONTENT_LENGTH` with the decimal value
//!   `content_length`, `scgi_index` is the first `SCGI` pair; strict adds
//!   unique names and `SCGI` = `1`;
//! - strict only ever adds errors: when strict is Complete, the lenient parse
//!   is the same Complete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scgi_parser::names::{known_id, ID_CONTENT_LENGTH, ID_SCGI};
use scgi_parser::*;
use scgi_parser_fuzz::CONFIGS;

const PATTERN: u32 = 0xa5a5_a5a5;

fn check(data: &[u8], limits: &Limits) -> Result<Status, Error> {
    let size = out_size(limits.max_headers);
    let mut typed = vec![PATTERN; size];
    let mut raw = vec![PATTERN; size];
    let r = parse(data, limits, &mut typed);
    let flags = if limits.strict { FLAG_STRICT } else { 0 };
    let status = parse_raw(
        data,
        &mut raw,
        limits.max_header_size,
        limits.max_headers,
        flags,
    );
    assert_eq!(status, r.map_or(2, |s| s.code()), "status number");
    assert_eq!(typed, raw, "out differs between parse and parse_raw");
    let out = &typed;
    match r {
        Err(e) => {
            assert_eq!(Error::from_code(out[OUT_CODE]), Some(e));
            assert_eq!(out[OUT_HEADER_END], 0);
        }
        Ok(Status::Partial { need }) => {
            assert_eq!(out[OUT_CODE], 0);
            assert_eq!(out[OUT_HEADER_END] as usize, need.unwrap_or(0));
            if let Some(n) = need {
                assert!(n > data.len());
            }
            // Untouched beyond the two slots a Partial writes.
            assert!(out[2..].iter().all(|&v| v == PATTERN));
        }
        Ok(Status::Complete(head)) => check_complete(data, limits, out, &head),
    }
    r
}

fn check_complete(data: &[u8], limits: &Limits, out: &[u32], head: &Head) {
    assert_eq!(out[OUT_CODE], 0);
    assert_eq!(out[OUT_HEADER_END] as usize, head.header_end);
    assert_eq!(out[OUT_PAIR_COUNT] as usize, head.pair_count);
    let cl = u64::from(out[OUT_CL_LOW]) | u64::from(out[OUT_CL_HIGH]) << 32;
    assert_eq!(cl, head.content_length);
    assert!(cl <= MAX_CONTENT_LENGTH);
    assert_eq!(
        out[OUT_SCGI_INDEX],
        head.scgi_index.map_or(NO_INDEX, |k| k as u32)
    );
    assert!(head.pair_count >= 1 && head.pair_count <= limits.max_headers as usize);
    // Slots past the pairs are untouched.
    let used = OUT_PAIRS + head.pair_count * PAIR_STRIDE;
    assert!(out[OUT_SCGI_INDEX + 1..OUT_PAIRS]
        .iter()
        .chain(&out[used..])
        .all(|&v| v == PATTERN));

    // The netstring: digits ':' block ','.
    let colon = data.iter().position(|&c| c == b':').unwrap();
    let digits = &data[..colon];
    assert!(!digits.is_empty() && digits.len() <= 7 && digits.iter().all(u8::is_ascii_digit));
    assert!(digits.len() == 1 || digits[0] != b'0');
    let len: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
    assert!(len as u64 <= u64::from(limits.max_header_size.min(MAX_NETSTRING_LENGTH)));
    assert_eq!(head.header_end, colon + 1 + len + 1);
    assert_eq!(data[head.header_end - 1], b',');

    // The pairs tile the block, and the typed iterator reads the same slots.
    let pairs: Vec<Pair> = head.pairs(data, out).collect();
    assert_eq!(pairs.len(), head.pair_count);
    let mut pos = colon + 1;
    for (k, p) in pairs.iter().enumerate() {
        let s = &out[OUT_PAIRS + k * PAIR_STRIDE..][..PAIR_STRIDE];
        assert_eq!(
            s[0] as usize, pos,
            "pair {k} does not start where the last ended"
        );
        assert_eq!(data[s[1] as usize], 0);
        assert_eq!(s[2], s[1] + 1);
        assert_eq!(data[s[3] as usize], 0);
        assert_eq!(p.name, &data[s[0] as usize..s[1] as usize]);
        assert_eq!(p.value, &data[s[2] as usize..s[3] as usize]);
        assert!(!p.name.is_empty() && !p.name.contains(&0) && !p.value.contains(&0));
        assert_eq!(p.id, s[4]);
        assert_eq!(p.id, u32::from(known_id(p.name)));
        assert_eq!(
            p.known_name().map(str::as_bytes),
            (p.id != 0).then_some(p.name)
        );
        pos = s[3] as usize + 1;
    }
    assert_eq!(pos, head.header_end - 1, "pairs do not end at the ','");

    // CONTENT_LENGTH first, its value the decimal content_length.
    assert_eq!(pairs[0].id, u32::from(ID_CONTENT_LENGTH));
    let v = pairs[0].value;
    assert!(!v.is_empty() && v.iter().all(u8::is_ascii_digit));
    let trimmed = std::str::from_utf8(v).unwrap().trim_start_matches('0');
    let parsed: u64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().unwrap()
    };
    assert_eq!(parsed, head.content_length);

    let first_scgi = pairs.iter().position(|p| p.name == b"SCGI");
    assert_eq!(head.scgi_index, first_scgi);
    assert_eq!(
        first_scgi.map(|k| pairs[k].id),
        first_scgi.map(|_| u32::from(ID_SCGI))
    );
    assert_eq!(
        head.get(data, out, b"SCGI"),
        first_scgi.map(|k| pairs[k].value)
    );
    assert_eq!(head.get(data, out, b"CONTENT_LENGTH"), Some(v));

    if limits.strict {
        assert_eq!(first_scgi.map(|k| pairs[k].value), Some(&b"1"[..]));
        for (i, p) in pairs.iter().enumerate() {
            assert!(
                pairs[..i].iter().all(|q| q.name != p.name),
                "strict kept a duplicate"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for limits in &CONFIGS {
        let r = check(data, limits);
        if limits.strict {
            if let Ok(Status::Complete(head)) = r {
                let lenient = Limits {
                    strict: false,
                    ..*limits
                };
                assert_eq!(check(data, &lenient), Ok(Status::Complete(head)));
            }
        }
    }
});

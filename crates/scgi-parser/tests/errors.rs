//! Every error code, and the order of checks (which decides the code when
//! several things are wrong), as in `src/parser/js.ts`.

use scgi_parser::*;

const CL0: &str = "CONTENT_LENGTH\x000\x00";

fn ns(block: &str) -> Vec<u8> {
    format!("{}:{},", block.len(), block).into_bytes()
}

fn run(buf: &[u8], strict: bool) -> Result<Status, Error> {
    let limits = Limits {
        max_header_size: 1000,
        max_headers: 10,
        strict,
    };
    let mut out = vec![0u32; out_size(limits.max_headers)];
    let r = parse(buf, &limits, &mut out);
    match r {
        Err(e) => {
            assert_eq!(out[OUT_CODE], e.code());
            assert_eq!(out[OUT_HEADER_END], 0);
        }
        Ok(Status::Partial { need }) => {
            assert_eq!(out[OUT_CODE], 0);
            assert_eq!(out[OUT_HEADER_END] as usize, need.unwrap_or(0));
        }
        Ok(Status::Complete(h)) => {
            assert_eq!(out[OUT_CODE], 0);
            assert_eq!(out[OUT_HEADER_END] as usize, h.header_end);
        }
    }
    // parse_raw gives the same status number and the same out
    let mut out2 = vec![0u32; out_size(limits.max_headers)];
    let s = parse_raw(
        buf,
        &mut out2,
        limits.max_header_size,
        limits.max_headers,
        strict as u32,
    );
    assert_eq!(
        s,
        match r {
            Ok(st) => st.code(),
            Err(_) => 2,
        }
    );
    assert_eq!(out, out2);
    r
}

fn err(buf: &[u8]) -> Error {
    run(buf, false).unwrap_err()
}

fn err_strict(buf: &[u8]) -> Error {
    run(buf, true).unwrap_err()
}

fn partial(buf: &[u8]) -> Option<usize> {
    match run(buf, false) {
        Ok(Status::Partial { need }) => need,
        r => panic!("{:?}: {r:?}", String::from_utf8_lossy(buf)),
    }
}

fn complete(buf: &[u8], strict: bool) -> Head {
    match run(buf, strict) {
        Ok(Status::Complete(h)) => h,
        r => panic!("{:?}: {r:?}", String::from_utf8_lossy(buf)),
    }
}

#[test]
fn partial_inputs() {
    assert_eq!(partial(b""), None);
    assert_eq!(partial(b"1"), None);
    assert_eq!(partial(b"123"), None);
    assert_eq!(partial(b"0"), None);
    assert_eq!(partial(b"1:"), Some(4));
    assert_eq!(partial(b"17:CONTENT_LENGTH"), Some(21));
    assert_eq!(partial(b"17:CONTENT_LENGTH\x000\x00"), Some(21));
    big_prefixes();
}

fn big_prefixes() {
    // 9999999 > max_header_size 1000 in `run`, so check with a big limit here
    let limits = Limits {
        max_header_size: u32::MAX,
        max_headers: 10,
        strict: false,
    };
    let mut out = vec![0u32; out_size(10)];
    let r = parse(b"9999999:", &limits, &mut out);
    assert_eq!(
        r,
        Ok(Status::Partial {
            need: Some(10_000_008)
        })
    );
    assert_eq!(out[OUT_HEADER_END], 10_000_008);
    // the 8th digit is BadNetstring even with no limit
    assert_eq!(
        parse(b"10000000:", &limits, &mut out),
        Err(Error::BadNetstring)
    );
    assert_eq!(parse(b"00", &limits, &mut out), Err(Error::BadNetstring));
}

#[test]
fn bad_netstring() {
    assert_eq!(err(b":"), Error::BadNetstring);
    assert_eq!(err(b"a"), Error::BadNetstring);
    assert_eq!(err(b" 1:"), Error::BadNetstring);
    assert_eq!(err(b"1a"), Error::BadNetstring);
    assert_eq!(err(b"-1:"), Error::BadNetstring);
    assert_eq!(err(b"+1:"), Error::BadNetstring);
    assert_eq!(err(b"01:"), Error::BadNetstring); // leading zero
    assert_eq!(err(b"00"), Error::BadNetstring);
    assert_eq!(err(b"0:x"), Error::BadNetstring); // missing comma
    assert_eq!(err(b"1:a;"), Error::BadNetstring);
    let mut b = ns(CL0);
    *b.last_mut().unwrap() = b';';
    assert_eq!(err(&b), Error::BadNetstring);
    // comma is checked before the content of the block
    assert_eq!(err(b"3:abc."), Error::BadNetstring);
}

#[test]
fn header_too_large() {
    assert_eq!(err(b"1001:"), Error::HeaderTooLarge);
    assert_eq!(err(b"1001"), Error::HeaderTooLarge);
    assert_eq!(err(b"9999"), Error::HeaderTooLarge);
    assert_eq!(err(b"2000"), Error::HeaderTooLarge); // known at the 4th digit
    assert_eq!(partial(b"1000"), None);
    assert_eq!(partial(b"1000:"), Some(1006));
    // leading zero wins over too large; 8th digit wins over too large only if not already too large
    assert_eq!(err(b"09999"), Error::BadNetstring);
    assert_eq!(err(b"12345678"), Error::HeaderTooLarge);
    // max_header_size 0: only "0:," passes the prefix
    let limits = Limits {
        max_header_size: 0,
        max_headers: 10,
        strict: false,
    };
    let mut out = vec![0u32; out_size(10)];
    assert_eq!(parse(b"1", &limits, &mut out), Err(Error::HeaderTooLarge));
    assert_eq!(
        parse(b"0:,", &limits, &mut out),
        Err(Error::MissingContentLength)
    );
}

#[test]
fn missing_content_length() {
    assert_eq!(err(b"0:,"), Error::MissingContentLength);
    assert_eq!(
        err(&ns("SCGI\x001\x00CONTENT_LENGTH\x000\x00")),
        Error::MissingContentLength
    );
    assert_eq!(
        err(&ns("CONTENT_LENGTHX\x000\x00")),
        Error::MissingContentLength
    );
    assert_eq!(
        err(&ns("content_length\x000\x00")),
        Error::MissingContentLength
    );
}

#[test]
fn bad_headers() {
    assert_eq!(err(&ns("CONTENT_LENGTH")), Error::BadHeaders); // no NUL after the name
    assert_eq!(err(&ns("CONTENT_LENGTH\x000")), Error::BadHeaders); // no NUL after the value
    assert_eq!(err(&ns("\x00\x00")), Error::BadHeaders); // empty name
    assert_eq!(err(&ns(&format!("{CL0}\x00x\x00"))), Error::BadHeaders);
    assert_eq!(err(&ns(&format!("{CL0}A\x00B"))), Error::BadHeaders);
    assert_eq!(err(&ns(&format!("{CL0}A"))), Error::BadHeaders);
    // the NUL after the block (the comma position) does not count
    assert_eq!(err(b"16:CONTENT_LENGTH\x000\x00"), Error::BadNetstring);
    // BadHeaders is checked before the name: a malformed first pair is BadHeaders, not MissingContentLength
    assert_eq!(err(&ns("SCGI\x001")), Error::BadHeaders);
}

#[test]
fn bad_content_length() {
    assert_eq!(err(&ns("CONTENT_LENGTH\x00\x00")), Error::BadContentLength);
    assert_eq!(
        err(&ns("CONTENT_LENGTH\x00-1\x00")),
        Error::BadContentLength
    );
    assert_eq!(
        err(&ns("CONTENT_LENGTH\x00 1\x00")),
        Error::BadContentLength
    );
    assert_eq!(
        err(&ns("CONTENT_LENGTH\x001.0\x00")),
        Error::BadContentLength
    );
    assert_eq!(
        err(&ns("CONTENT_LENGTH\x009007199254740992\x00")),
        Error::BadContentLength
    );
    assert_eq!(
        err(&ns("CONTENT_LENGTH\x0099999999999999999999999\x00")),
        Error::BadContentLength
    );
    let h = complete(&ns("CONTENT_LENGTH\x009007199254740991\x00"), false);
    assert_eq!(h.content_length, 9007199254740991);
    let h = complete(
        &ns("CONTENT_LENGTH\x0000000000000000000000000042\x00"),
        false,
    );
    assert_eq!(h.content_length, 42);
    let h = complete(&ns("CONTENT_LENGTH\x004294967296\x00"), false);
    assert_eq!(h.content_length, 1 << 32);
}

#[test]
fn too_many_headers() {
    let block: String = std::iter::once(CL0.to_string())
        .chain((0..10).map(|i| format!("H{i}\x00v\x00")))
        .collect();
    assert_eq!(err(&ns(&block)), Error::TooManyHeaders); // 11 pairs, max 10
    let block: String = std::iter::once(CL0.to_string())
        .chain((0..9).map(|i| format!("H{i}\x00v\x00")))
        .collect();
    assert_eq!(complete(&ns(&block), false).pair_count, 10);
    // a malformed 11th pair is BadHeaders, not TooManyHeaders (pair shape is checked first)
    let block: String = std::iter::once(CL0.to_string())
        .chain((0..10).map(|i| format!("H{i}\x00v\x00")))
        .collect::<String>();
    assert_eq!(err(&ns(&block[..block.len() - 1])), Error::BadHeaders);
    // max_headers 0: the first well-formed pair is too many, before its name is looked at
    let limits = Limits {
        max_header_size: 1000,
        max_headers: 0,
        strict: false,
    };
    let mut out = vec![0u32; out_size(0)];
    assert_eq!(
        parse(&ns("X\x00\x00"), &limits, &mut out),
        Err(Error::TooManyHeaders)
    );
}

#[test]
fn duplicates_and_scgi() {
    let dup_known = ns(&format!(
        "{CL0}SCGI\x001\x00HTTP_HOST\x00a\x00HTTP_HOST\x00b\x00"
    ));
    assert_eq!(complete(&dup_known, false).pair_count, 4);
    assert_eq!(err_strict(&dup_known), Error::DuplicateHeader);
    let dup_unknown = ns(&format!(
        "{CL0}SCGI\x001\x00X_A\x00a\x00X_B\x00b\x00X_A\x00c\x00"
    ));
    assert_eq!(complete(&dup_unknown, false).pair_count, 5);
    assert_eq!(err_strict(&dup_unknown), Error::DuplicateHeader);
    let dup_cl = ns(&format!("{CL0}SCGI\x001\x00CONTENT_LENGTH\x001\x00"));
    assert_eq!(err_strict(&dup_cl), Error::DuplicateHeader);
    let dup_scgi = ns(&format!("{CL0}SCGI\x001\x00SCGI\x001\x00"));
    assert_eq!(complete(&dup_scgi, false).scgi_index, Some(1));
    assert_eq!(err_strict(&dup_scgi), Error::DuplicateHeader);
    // names differing in case, or a prefix of each other, are not duplicates
    let distinct = ns(&format!(
        "{CL0}SCGI\x001\x00X_A\x00a\x00x_a\x00b\x00X_AB\x00c\x00X_\x00d\x00"
    ));
    assert_eq!(complete(&distinct, true).pair_count, 6);
    // missing SCGI, or not "1"
    let no_scgi = ns(&format!("{CL0}HTTP_HOST\x00a\x00"));
    assert_eq!(complete(&no_scgi, false).scgi_index, None);
    assert_eq!(err_strict(&no_scgi), Error::MissingScgi);
    assert_eq!(
        err_strict(&ns(&format!("{CL0}SCGI\x002\x00"))),
        Error::MissingScgi
    );
    assert_eq!(
        err_strict(&ns(&format!("{CL0}SCGI\x00\x00"))),
        Error::MissingScgi
    );
    assert_eq!(
        err_strict(&ns(&format!("{CL0}SCGI\x0011\x00"))),
        Error::MissingScgi
    );
    assert_eq!(err_strict(&ns(CL0)), Error::MissingScgi);
    // duplicate is found before the end-of-block SCGI check
    assert_eq!(
        err_strict(&ns(&format!("{CL0}A\x00\x00A\x00\x00"))),
        Error::DuplicateHeader
    );
    // SCGI first (before CONTENT_LENGTH) is MissingContentLength even in strict mode
    assert_eq!(
        err_strict(&ns(&format!("SCGI\x001\x00{CL0}"))),
        Error::MissingContentLength
    );
    let ok = complete(&ns(&format!("{CL0}SCGI\x001\x00")), true);
    assert_eq!(ok.scgi_index, Some(1));
}

#[test]
fn complete_layout_and_ergonomic_api() {
    let mut buf = ns("CONTENT_LENGTH\x005\x00SCGI\x001\x00X_EMPTY\x00\x00HTTP_HOST\x00h\x00");
    buf.extend_from_slice(b"hello, and more bytes");
    let limits = Limits::default();
    let mut out = vec![0u32; out_size(limits.max_headers)];
    let Ok(Status::Complete(h)) = parse(&buf, &limits, &mut out) else {
        panic!()
    };
    assert_eq!(&buf[h.header_end..h.header_end + 5], b"hello");
    assert_eq!(h.content_length, 5);
    assert_eq!(h.pair_count, 4);
    let pairs: Vec<_> = h.pairs(&buf, &out).collect();
    assert_eq!(pairs.len(), 4);
    assert_eq!(
        pairs[2],
        Pair {
            name: b"X_EMPTY",
            value: b"",
            id: 0
        }
    );
    assert_eq!(pairs[3].known_name(), Some("HTTP_HOST"));
    assert_eq!(h.get(&buf, &out, b"X_EMPTY"), Some(&b""[..]));
    assert_eq!(h.get(&buf, &out, b"NOPE"), None);
    assert_eq!(h.pairs(&buf, &out).len(), 4);
    // slots
    let prefix = buf.iter().position(|&c| c == b':').unwrap() + 1;
    assert_eq!(
        &out[OUT_PAIRS..OUT_PAIRS + 5],
        &[
            prefix as u32,
            prefix as u32 + 14,
            prefix as u32 + 15,
            prefix as u32 + 16,
            1
        ]
    );
    assert_eq!(out[OUT_SCGI_INDEX], 1);
    assert_eq!(out[6], 0);
    assert_eq!(out[7], 0);
}

#[test]
fn limits_above_the_grammar() {
    // max_header_size above 9_999_999 acts as 9_999_999; the 8th digit is BadNetstring
    let limits = Limits {
        max_header_size: u32::MAX,
        max_headers: 1,
        strict: false,
    };
    let mut out = vec![0u32; out_size(1)];
    assert_eq!(
        parse(b"9999999", &limits, &mut out),
        Ok(Status::Partial { need: None })
    );
    assert_eq!(
        parse(b"99999999", &limits, &mut out),
        Err(Error::BadNetstring)
    );
}

#[test]
#[should_panic]
fn out_too_small_panics_instead_of_writing_past_it() {
    let limits = Limits {
        max_header_size: 1000,
        max_headers: 10,
        strict: false,
    };
    let mut out = vec![0u32; out_size(1)];
    let _ = parse(&ns(&format!("{CL0}SCGI\x001\x00")), &limits, &mut out);
}

//! Properties: valid requests round-trip; any split gives Partial then the
//! same result; an error prefix keeps its error when extended; arbitrary bytes
//! never panic.

use proptest::prelude::*;
use scgi_parser::names::KNOWN_NAMES;
use scgi_parser::*;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1..KNOWN_NAMES.len()).prop_map(|i| KNOWN_NAMES[i].as_bytes().to_vec()),
        proptest::collection::vec(1u8..=255, 1..12),
        "[A-Z_]{1,10}".prop_map(String::into_bytes),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(1u8..=255, 0..40),
        "[ -~]{0,20}".prop_map(String::into_bytes),
    ]
}

/// CONTENT_LENGTH value: a valid number, maybe with leading zeros.
fn content_length() -> impl Strategy<Value = (u64, Vec<u8>)> {
    (
        prop_oneof![0u64..1000, 0..=MAX_CONTENT_LENGTH, Just(MAX_CONTENT_LENGTH)],
        0usize..4,
    )
        .prop_map(|(n, zeros)| (n, format!("{}{n}", "0".repeat(zeros)).into_bytes()))
}

/// A valid request: (bytes, pairs including CONTENT_LENGTH, content length, header end).
fn request() -> impl Strategy<Value = (Vec<u8>, Pairs, u64, usize)> {
    (
        content_length(),
        proptest::collection::vec((name(), value()), 0..20),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|((cl, cl_text), rest, body)| {
            let mut pairs = vec![(b"CONTENT_LENGTH".to_vec(), cl_text)];
            pairs.extend(rest);
            let (buf, end) = encode(&pairs, &body);
            (buf, pairs, cl, end)
        })
}

fn encode(pairs: &Pairs, body: &[u8]) -> (Vec<u8>, usize) {
    let mut block = Vec::new();
    for (n, v) in pairs {
        block.extend_from_slice(n);
        block.push(0);
        block.extend_from_slice(v);
        block.push(0);
    }
    let mut buf = format!("{}:", block.len()).into_bytes();
    buf.extend_from_slice(&block);
    buf.push(b',');
    let end = buf.len();
    buf.extend_from_slice(body);
    (buf, end)
}

fn limits(strict: bool) -> Limits {
    Limits {
        max_header_size: 1 << 20,
        max_headers: 100,
        strict,
    }
}

fn run(buf: &[u8], l: &Limits) -> (Result<Status, Error>, Vec<u32>) {
    let mut out = vec![0u32; out_size(l.max_headers)];
    let r = parse(buf, l, &mut out);
    (r, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn valid_requests_round_trip((buf, pairs, cl, end) in request()) {
        let l = limits(false);
        let (r, out) = run(&buf, &l);
        let Ok(Status::Complete(h)) = r else { panic!("{r:?}") };
        prop_assert_eq!(h.header_end, end);
        prop_assert_eq!(h.content_length, cl);
        prop_assert_eq!(h.pair_count, pairs.len());
        let got: Pairs = h.pairs(&buf, &out).map(|p| (p.name.to_vec(), p.value.to_vec())).collect();
        prop_assert_eq!(&got, &pairs);
        let scgi = pairs.iter().position(|(n, _)| n == b"SCGI");
        prop_assert_eq!(h.scgi_index, scgi);
        for p in h.pairs(&buf, &out) {
            prop_assert_eq!(p.id, names::known_id(p.name) as u32);
        }
        // strict: Complete exactly when names are unique and the first SCGI is "1"
        let (rs, _) = run(&buf, &limits(true));
        let mut names: Vec<&Vec<u8>> = pairs.iter().map(|(n, _)| n).collect();
        names.sort();
        let unique = names.windows(2).all(|w| w[0] != w[1]);
        let scgi_ok = scgi.is_some_and(|i| pairs[i].1 == b"1");
        let want = if !unique { Err(Error::DuplicateHeader) } else if !scgi_ok { Err(Error::MissingScgi) } else { r };
        prop_assert_eq!(rs, want);
    }

    #[test]
    fn strict_valid_requests_are_complete(
        cl in content_length(),
        rest in proptest::collection::btree_map(name(), value(), 0..20),
        at in any::<prop::sample::Index>(),
    ) {
        let mut pairs: Pairs = rest.into_iter().filter(|(n, _)| n != b"CONTENT_LENGTH" && n != b"SCGI").collect();
        pairs.insert(at.index(pairs.len() + 1), (b"SCGI".to_vec(), b"1".to_vec()));
        pairs.insert(0, (b"CONTENT_LENGTH".to_vec(), cl.1));
        let (buf, end) = encode(&pairs, b"");
        let (r, _) = run(&buf, &limits(true));
        let Ok(Status::Complete(h)) = r else { panic!("{r:?}") };
        prop_assert_eq!(h.header_end, end);
        prop_assert_eq!(h.content_length, cl.0);
    }

    #[test]
    fn any_split_is_partial_then_the_same((buf, _pairs, _cl, end) in request(), strict in any::<bool>()) {
        let l = limits(strict);
        let (whole, whole_out) = run(&buf, &l);
        let colon = buf.iter().position(|&c| c == b':').unwrap();
        for k in 0..end {
            let (r, out) = run(&buf[..k], &l);
            let need = if k > colon { Some(end) } else { None };
            prop_assert_eq!(r, Ok(Status::Partial { need }), "prefix {}", k);
            prop_assert_eq!(out[OUT_HEADER_END] as usize, need.unwrap_or(0));
            prop_assert_eq!(out[OUT_CODE], 0);
        }
        for k in end..=buf.len() {
            let (r, out) = run(&buf[..k], &l);
            prop_assert_eq!(r, whole);
            prop_assert_eq!(&out, &whole_out);
        }
    }

    #[test]
    fn an_error_stays_the_same_error_when_extended(
        (buf, _pairs, _cl, _end) in request(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        strict in any::<bool>(),
        max_headers in 0u32..30,
        max_header_size in prop_oneof![0u32..400, Just(1 << 20)],
    ) {
        let mut bad = buf.clone();
        for (i, b) in flips {
            let i = i.index(bad.len());
            bad[i] = b;
        }
        let l = Limits { max_header_size, max_headers, strict };
        let k = cut.index(bad.len() + 1);
        let (r, _) = run(&bad[..k], &l);
        let mut longer = bad.clone();
        longer.extend_from_slice(&tail);
        let (r2, _) = run(&longer, &l);
        let (r3, _) = run(&bad, &l);
        if let Err(e) = r {
            prop_assert_eq!(r2, Err(e));
            prop_assert_eq!(r3, Err(e));
        }
        if let Ok(Status::Complete(_)) = r {
            prop_assert_eq!(r2, r);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        buf in proptest::collection::vec(any::<u8>(), 0..300),
        digits in any::<bool>(),
        strict in any::<bool>(),
        max_headers in 0u32..40,
        max_header_size in any::<u32>(),
    ) {
        // half the time, give the bytes a plausible length prefix so the pair scanner is reached
        let mut input = if digits { format!("{}:", buf.len().saturating_sub(1)).into_bytes() } else { Vec::new() };
        input.extend_from_slice(&buf);
        let l = Limits { max_header_size, max_headers, strict };
        let (r, out) = run(&input, &l);
        match r {
            Err(e) => {
                prop_assert_eq!(out[OUT_CODE], e.code());
                prop_assert_eq!(parse_raw(&input, &mut out.clone(), max_header_size, max_headers, strict as u32), 2);
            }
            Ok(Status::Partial { need }) => prop_assert_eq!(out[OUT_HEADER_END] as usize, need.unwrap_or(0)),
            Ok(Status::Complete(h)) => {
                prop_assert!(h.header_end <= input.len());
                prop_assert!(h.pair_count <= max_headers as usize);
                for p in h.pairs(&input, &out) {
                    prop_assert!(!p.name.is_empty() && !p.name.contains(&0) && !p.value.contains(&0));
                }
            }
        }
    }
}

//! Every captured request in `test/fixtures` (nginx, Apache httpd, lighttpd)
//! parses to exactly the pairs and CONTENT_LENGTH listed in `index.json`.

use scgi_parser::*;
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test/fixtures"))
}

fn index() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("index.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_fixture_parses_as_listed() {
    let entries = index();
    assert!(entries.len() >= 30, "only {} fixtures", entries.len());
    let mut complete = 0;
    for e in &entries {
        let file = e["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        assert_eq!(bytes.len() as u64, e["bytes"].as_u64().unwrap(), "{file}");
        for strict in [false, true] {
            let limits = Limits {
                strict,
                ..Limits::default()
            };
            let mut out = vec![0u32; out_size(limits.max_headers)];
            let result = parse(&bytes, &limits, &mut out);
            if bytes.is_empty() {
                assert_eq!(result, Ok(Status::Partial { need: None }), "{file}");
                assert_eq!(out[OUT_CODE], 0);
                assert_eq!(out[OUT_HEADER_END], 0);
                continue;
            }
            let dups = !e["duplicateKeys"].as_array().unwrap().is_empty();
            // index.json has scgiIndex -1 when there is no SCGI pair
            let scgi_index = e["scgiIndex"].as_u64();
            let has_scgi = scgi_index.is_some();
            if strict && dups {
                assert_eq!(result, Err(Error::DuplicateHeader), "{file} strict");
                assert_eq!(out[OUT_CODE], Error::DuplicateHeader.code());
                continue;
            }
            if strict && !has_scgi {
                assert_eq!(result, Err(Error::MissingScgi), "{file} strict");
                continue;
            }
            let Ok(Status::Complete(head)) = result else {
                panic!("{file} strict={strict}: {result:?}")
            };
            let netstring_len = e["netstringLen"].as_u64().unwrap() as usize;
            let prefix = netstring_len.to_string().len();
            assert_eq!(head.header_end, prefix + 1 + netstring_len + 1, "{file}");
            assert_eq!(
                head.header_end + e["bodyBytes"].as_u64().unwrap() as usize,
                bytes.len(),
                "{file}"
            );
            let cl: u64 = e["contentLength"].as_str().unwrap().parse().unwrap();
            assert_eq!(head.content_length, cl, "{file}");
            assert_eq!(head.scgi_index.map(|i| i as u64), scgi_index, "{file}");
            let want: Vec<(Vec<u8>, Vec<u8>)> = e["pairs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().as_bytes().to_vec(),
                        p[1].as_str().unwrap().as_bytes().to_vec(),
                    )
                })
                .collect();
            let got: Vec<(Vec<u8>, Vec<u8>)> = head
                .pairs(&bytes, &out)
                .map(|p| (p.name.to_vec(), p.value.to_vec()))
                .collect();
            assert_eq!(got, want, "{file}");
            assert_eq!(
                head.pair_count as u64,
                e["pairCount"].as_u64().unwrap(),
                "{file}"
            );
            // out slots as the TS parser writes them
            assert_eq!(out[OUT_CODE], 0);
            assert_eq!(out[OUT_HEADER_END] as usize, head.header_end);
            assert_eq!(out[OUT_PAIR_COUNT] as usize, head.pair_count);
            assert_eq!(out[OUT_CL_LOW] as u64 | (out[OUT_CL_HIGH] as u64) << 32, cl);
            assert_eq!(
                out[OUT_SCGI_INDEX],
                head.scgi_index.map_or(NO_INDEX, |i| i as u32)
            );
            for p in head.pairs(&bytes, &out) {
                assert_eq!(p.id as u8, names::known_id(p.name));
                if let Some(n) = p.known_name() {
                    assert_eq!(n.as_bytes(), p.name);
                }
            }
            assert_eq!(
                head.get(&bytes, &out, b"CONTENT_LENGTH"),
                Some(e["contentLength"].as_str().unwrap().as_bytes())
            );
            // every proper prefix of the header is Partial; the need is exact once known
            for k in 0..head.header_end {
                let r = parse(&bytes[..k], &limits, &mut out);
                let Ok(Status::Partial { need }) = r else {
                    panic!("{file} prefix {k}: {r:?}")
                };
                if k > prefix {
                    assert_eq!(need, Some(head.header_end));
                } else {
                    assert_eq!(need, None);
                }
            }
            complete += 1;
        }
    }
    assert!(complete >= 40, "{complete}");
}

#[test]
fn fixture_limits() {
    let bytes = std::fs::read(dir().join("nginx-tcp-get.bin")).unwrap();
    let mut out = vec![0u32; out_size(1000)];
    // header block is 777 bytes and has 24 pairs
    let l = |max_header_size, max_headers| Limits {
        max_header_size,
        max_headers,
        strict: false,
    };
    assert!(matches!(
        parse(&bytes, &l(777, 24), &mut out),
        Ok(Status::Complete(_))
    ));
    assert_eq!(
        parse(&bytes, &l(776, 24), &mut out),
        Err(Error::HeaderTooLarge)
    );
    assert_eq!(
        parse(&bytes, &l(777, 23), &mut out),
        Err(Error::TooManyHeaders)
    );
    assert_eq!(out[OUT_CODE], Error::TooManyHeaders.code());
    assert_eq!(out[OUT_HEADER_END], 0);
    // HeaderTooLarge is known from the first digits, before the block is buffered
    assert_eq!(
        parse(&bytes[..3], &l(99, 24), &mut out),
        Err(Error::HeaderTooLarge)
    );
    assert_eq!(
        parse(&bytes[..2], &l(76, 24), &mut out),
        Err(Error::HeaderTooLarge)
    );
    assert_eq!(
        parse(&bytes[..2], &l(77, 24), &mut out),
        Ok(Status::Partial { need: None })
    );
}

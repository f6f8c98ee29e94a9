//! The Rust constants must be those of `src/parser/types.ts`, the contract
//! shared with the TypeScript parser. This reads that file so the two cannot drift.

use scgi_parser::names::{known_id, known_name, ID_CONTENT_LENGTH, ID_SCGI, KNOWN_NAMES};
use scgi_parser::*;

fn types_ts() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../src/parser/types.ts");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The text between `start` and the next `end` after it.
fn section<'a>(src: &'a str, start: &str, end: &str) -> &'a str {
    let from = src
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in types.ts"))
        + start.len();
    let len = src[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} after {start:?} not in types.ts"));
    &src[from..from + len]
}

/// Single-quoted strings in `s`, in order, ignoring `//` comments.
fn quoted(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    for line in s.lines() {
        let line = line.split("//").next().unwrap();
        let mut rest = line;
        while let Some(a) = rest.find('\'') {
            let b = rest[a + 1..].find('\'').expect("unterminated string") + a + 1;
            v.push(rest[a + 1..b].to_string());
            rest = &rest[b + 1..];
        }
    }
    v
}

/// `export const NAME = <number>;` in types.ts, as a number.
fn const_number(src: &str, name: &str) -> u64 {
    let text = section(src, &format!("export const {name} = "), ";").replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => text
            .parse()
            .unwrap_or_else(|e| panic!("{name} = {text:?}: {e}")),
    }
}

#[test]
fn known_names_match_types_ts() {
    let src = types_ts();
    let ts = quoted(section(&src, "export const KNOWN_NAMES = [", "] as const;"));
    let rs: Vec<String> = KNOWN_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        rs, ts,
        "crates/scgi-parser/src/names.rs KNOWN_NAMES differs from src/parser/types.ts"
    );
    assert_eq!(
        const_number(&src, "ID_CONTENT_LENGTH"),
        ID_CONTENT_LENGTH as u64
    );
    assert_eq!(const_number(&src, "ID_SCGI"), ID_SCGI as u64);
}

#[test]
fn known_id_agrees_with_table() {
    for (id, name) in KNOWN_NAMES.iter().enumerate().skip(1) {
        assert_eq!(known_id(name.as_bytes()) as usize, id, "{name}");
        assert_eq!(known_name(id as u32), Some(*name));
    }
    assert_eq!(known_id(b""), 0);
    assert_eq!(known_id(b"HTTP_HOSTX"), 0);
    assert_eq!(known_id(b"http_host"), 0);
    assert_eq!(known_name(0), None);
    assert_eq!(known_name(KNOWN_NAMES.len() as u32), None);
    let mut sorted = KNOWN_NAMES.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), KNOWN_NAMES.len(), "duplicate in KNOWN_NAMES");
}

#[test]
fn error_codes_match_types_ts() {
    let src = types_ts();
    let names = quoted(section(&src, "export const CODE_NAMES = [", "] as const;"));
    assert_eq!(names.len(), Error::ALL.len() + 1);
    assert_eq!(names[0], "");
    let code = section(&src, "export const Code = {", "} as const;");
    for e in Error::ALL {
        assert_eq!(names[e.code() as usize], e.as_str());
        assert_eq!(Error::from_code(e.code()), Some(e));
        let variant = format!("{e:?}");
        let line = code
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{variant}:")))
            .unwrap_or_else(|| panic!("Code.{variant} not in types.ts"));
        let n: u32 = line[variant.len() + 1..]
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap();
        assert_eq!(n, e.code(), "Code.{variant}");
        assert_eq!(e.to_string(), e.as_str());
    }
    assert_eq!(Error::from_code(0), None);
    assert_eq!(Error::from_code(9), None);
}

#[test]
fn layout_matches_types_ts() {
    let src = types_ts();
    for (name, value) in [
        ("OUT_CODE", OUT_CODE as u64),
        ("OUT_HEADER_END", OUT_HEADER_END as u64),
        ("OUT_PAIR_COUNT", OUT_PAIR_COUNT as u64),
        ("OUT_CL_LOW", OUT_CL_LOW as u64),
        ("OUT_CL_HIGH", OUT_CL_HIGH as u64),
        ("OUT_SCGI_INDEX", OUT_SCGI_INDEX as u64),
        ("OUT_PAIRS", OUT_PAIRS as u64),
        ("PAIR_STRIDE", PAIR_STRIDE as u64),
        ("NO_INDEX", NO_INDEX as u64),
        ("FLAG_STRICT", FLAG_STRICT as u64),
        ("MAX_NETSTRING_LENGTH", MAX_NETSTRING_LENGTH as u64),
    ] {
        assert_eq!(const_number(&src, name), value, "{name}");
    }
    let status = section(&src, "export const Status = {", "} as const;");
    for (name, n) in [("Complete: ", 0), ("Partial: ", 1), ("Error: ", 2)] {
        assert!(status.contains(&format!("{name}{n},")), "Status.{name}");
    }
}

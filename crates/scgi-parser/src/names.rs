//! The known-name table: names the parser recognises while scanning and reports
//! as an id (index in [`KNOWN_NAMES`]), so that callers need not allocate a string
//! for them. Identical, in order, to `KNOWN_NAMES` in `src/parser/types.ts` (a test
//! reads that file and compares). Append only: the ids are part of the contract.

/// Known names, index = id. Index 0 is the empty string: "not a known name".
pub const KNOWN_NAMES: [&str; 69] = [
    "",
    "CONTENT_LENGTH",
    "SCGI",
    "REQUEST_METHOD",
    "REQUEST_URI",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "GATEWAY_INTERFACE",
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_USER",
    "SERVER_ADDR",
    "SERVER_PORT",
    "SERVER_NAME",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "REDIRECT_STATUS",
    "SERVER_SIGNATURE",
    "SERVER_ADMIN",
    "CONTEXT_PREFIX",
    "CONTEXT_DOCUMENT_ROOT",
    "PATH",
    "AUTH_TYPE",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_CHARSET",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_CONNECTION",
    "HTTP_CACHE_CONTROL",
    "HTTP_PRAGMA",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_CONTENT_LENGTH",
    "HTTP_CONTENT_TYPE",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_AUTHORIZATION",
    "HTTP_ORIGIN",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUESTED_WITH",
    "HTTP_DNT",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_USER",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
    "HTTP_PRIORITY",
    "HTTP_TE",
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_EXPECT",
    "HTTP_UPGRADE",
];

/// Id of `CONTENT_LENGTH` in [`KNOWN_NAMES`].
pub const ID_CONTENT_LENGTH: u8 = 1;
/// Id of `SCGI` in [`KNOWN_NAMES`].
pub const ID_SCGI: u8 = 2;

/// Shortest and longest known names: other lengths are not looked up.
const MIN_LEN: usize = extreme(true);
const MAX_LEN: usize = extreme(false);

const fn extreme(min: bool) -> usize {
    let mut m = if min { usize::MAX } else { 0 };
    let mut i = 1;
    while i < KNOWN_NAMES.len() {
        let l = KNOWN_NAMES[i].len();
        if (min && l < m) || (!min && l > m) {
            m = l;
        }
        i += 1;
    }
    m
}

/// Perfect hash of a name of length `MIN_LEN..=MAX_LEN` (at least 2) into
/// [`TABLE`]: length, last two bytes and middle byte, with multipliers chosen
/// so that no two known names collide (checked at compile time below).
#[inline(always)]
const fn hash(n: &[u8]) -> usize {
    let l = n.len();
    (l * 7 + n[l - 1] as usize * 43 + n[l - 2] as usize * 47 + n[l / 2] as usize) & 255
}

/// `TABLE[hash(name)]` = the id of the only known name with that hash, or 0.
static TABLE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 1;
    while i < KNOWN_NAMES.len() {
        let h = hash(KNOWN_NAMES[i].as_bytes());
        // A new name that collides fails the build: pick other multipliers in `hash`.
        assert!(
            t[h] == 0,
            "KNOWN_NAMES: perfect hash collision, change the multipliers in names::hash"
        );
        t[h] = i as u8;
        i += 1;
    }
    t
};

const _: () = assert!(MIN_LEN >= 2 && KNOWN_NAMES.len() < 256);

/// The id of `name` in [`KNOWN_NAMES`], or 0 when it is not a known name.
///
/// One perfect-hash lookup and one comparison (a `match` on the slice
/// compiles to one comparison per arm, several times slower on unknown names).
#[inline]
pub fn known_id(name: &[u8]) -> u8 {
    if name.len() < MIN_LEN || name.len() > MAX_LEN {
        return 0;
    }
    let id = TABLE[hash(name)];
    if KNOWN_NAMES[id as usize].as_bytes() == name {
        id
    } else {
        0
    }
}

/// The name for a known id, or `None` for 0 and ids past the table.
#[inline]
pub fn known_name(id: u32) -> Option<&'static str> {
    match id {
        0 => None,
        _ => KNOWN_NAMES.get(id as usize).copied(),
    }
}

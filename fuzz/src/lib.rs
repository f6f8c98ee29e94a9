//! What the fuzz targets share: the limit sets every input is parsed under.
//!
//! The input bytes are the request itself (not a configuration prefix), so
//! the seed corpus, the captured requests of `test/fixtures/*.bin`, is
//! meaningful as it is; each input is parsed under each of [`CONFIGS`].

use scgi_parser::Limits;

/// The defaults; strict; and tight limits (a small header size and pair
/// count, so `HeaderTooLarge` and `TooManyHeaders` are reachable by short inputs).
pub const CONFIGS: [Limits; 4] = [
    Limits {
        max_header_size: 64 * 1024,
        max_headers: 1000,
        strict: false,
    },
    Limits {
        max_header_size: 64 * 1024,
        max_headers: 1000,
        strict: true,
    },
    Limits {
        max_header_size: 300,
        max_headers: 4,
        strict: false,
    },
    Limits {
        max_header_size: 12,
        max_headers: 1,
        strict: true,
    },
];

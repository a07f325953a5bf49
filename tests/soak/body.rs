//! Job bodies that carry their own identity: a token unique in the run,
//! the body's length, and filler derived from both. A body read back is
//! checked whole against its own token, so a body cut short, spliced or
//! handed out for another job shows, whatever its id.

/// `soak <token, 16 hex> <length, 6 hex> `: what every body starts with.
const HEADER_LEN: usize = 29;

/// The shortest body [`make`] writes.
pub const MIN_LEN: usize = HEADER_LEN + 3;

/// The body of `token`, `len` bytes (at least [`MIN_LEN`]): the header,
/// then lowercase letters from a generator seeded by the token.
pub fn make(token: u64, len: usize) -> Vec<u8> {
    assert!(len >= MIN_LEN, "a body of {len} bytes has no room for its header");
    let mut body = format!("soak {token:016x} {len:06x} ").into_bytes();
    debug_assert_eq!(body.len(), HEADER_LEN);
    let mut x = token.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    body.extend((HEADER_LEN..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b'a' + (x % 26) as u8
    }));
    body
}

/// The token of a body that is whole (exactly what [`make`] wrote for that
/// token and length), or `None`.
pub fn token(body: &[u8]) -> Option<u64> {
    let header = std::str::from_utf8(body.get(..HEADER_LEN)?).ok()?;
    let mut words = header.strip_prefix("soak ")?.split(' ');
    let token = u64::from_str_radix(words.next()?, 16).ok()?;
    let len = usize::from_str_radix(words.next()?, 16).ok()?;
    (len == body.len() && make(token, len) == body).then_some(token)
}

#[test]
fn a_body_names_its_token_and_any_change_shows() {
    let body = make(0xABCD, 100);
    assert_eq!(body.len(), 100);
    assert_eq!(token(&body), Some(0xABCD));
    let mut flipped = body.clone();
    flipped[60] ^= 1;
    assert_eq!(token(&flipped), None);
    assert_eq!(token(&body[..99]), None);
    assert_eq!(token(&make(0xABCE, 100)[..]), Some(0xABCE));
    assert_eq!(token(b"soak"), None);
}

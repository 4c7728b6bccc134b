//! Lower-case hex of bytes, for the report lines.

/// Write the hex of `bytes` into `out` (two characters per byte); returns the used part.
pub fn encode<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a [u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = bytes.len().min(out.len() / 2);
    for (i, b) in bytes[..n].iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    &out[..2 * n]
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_and_stops_at_the_buffer() {
        let mut out = [0u8; 5];
        assert_eq!(super::encode(&[0x0a, 0xff, 0x10], &mut out), b"0aff");
    }
}

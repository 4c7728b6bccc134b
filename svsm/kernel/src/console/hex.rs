//! Bytes shown as lowercase hex on the console (digests, measurements).

/// Displays its bytes as lowercase hex, two digits each, no separators.
pub struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Hex;

    #[test]
    fn bytes_are_two_lowercase_digits_each() {
        assert_eq!(alloc::format!("{}", Hex(&[0x00, 0xab, 0x0f])), "00ab0f");
        assert_eq!(alloc::format!("{}", Hex(&[])), "");
    }
}

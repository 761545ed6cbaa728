//! Strict base64url (RFC 4648 §5, no padding), as JOSE requires (RFC 7515 §2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding, strictly: padding, the standard
/// alphabet's `+` and `/`, whitespace and non-canonical trailing bits are all
/// errors, so every byte string has exactly one accepted encoding.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejects_padding_standard_alphabet_and_noncanonical_bits() {
        assert_eq!(super::decode("aGk").unwrap(), b"hi");
        assert!(super::decode("aGk=").is_err());
        assert!(super::decode("+/8").is_err());
        // "aGl" decodes to "hi" plus non-zero trailing bits: not canonical.
        assert!(super::decode("aGl").is_err());
        assert!(super::decode("aG k").is_err());
    }
}

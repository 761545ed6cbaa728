//! The little DER svcauth needs: reading a SubjectPublicKeyInfo, an
//! ECDSA signature and a PKCS#11 `CKA_EC_POINT`, and writing an
//! RSAPublicKey. Everything else is aws-lc-rs's job.

pub(crate) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
pub(crate) const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
pub(crate) const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;

/// Reads one TLV from the front of `input`.
fn take<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (value, after) = rest.split_at(len);
    *input = after;
    Some(value)
}

/// A parsed SubjectPublicKeyInfo (RFC 5280 §4.1).
pub(crate) struct Spki<'a> {
    pub(crate) algorithm: &'a [u8],
    pub(crate) curve: Option<&'a [u8]>,
    pub(crate) key: &'a [u8],
}

pub(crate) fn parse_spki(der: &[u8]) -> Option<Spki<'_>> {
    let mut input = der;
    let mut spki = take(&mut input, SEQUENCE)?;
    if !input.is_empty() {
        return None;
    }
    let mut alg_id = take(&mut spki, SEQUENCE)?;
    let algorithm = take(&mut alg_id, OID)?;
    let curve = if alg_id.first() == Some(&OID) {
        Some(take(&mut alg_id, OID)?)
    } else {
        None
    };
    let bits = take(&mut spki, BIT_STRING)?;
    let (&unused, key) = bits.split_first()?;
    if unused != 0 || !spki.is_empty() {
        return None;
    }
    Some(Spki {
        algorithm,
        curve,
        key,
    })
}

/// Reads an RSAPublicKey (RFC 8017 §A.1.1) into unsigned big-endian `(n, e)`.
pub(crate) fn parse_rsa_public_key(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut input = der;
    let mut seq = take(&mut input, SEQUENCE)?;
    let n = take(&mut seq, INTEGER)?;
    let e = take(&mut seq, INTEGER)?;
    if !seq.is_empty() || !input.is_empty() {
        return None;
    }
    Some((strip_zeros(n).to_vec(), strip_zeros(e).to_vec()))
}

/// An ECDSA signature in DER (`SEQUENCE { r INTEGER, s INTEGER }`, what
/// X.509, most HSMs' `*_SHA256` mechanisms and every cloud KMS return) as
/// the fixed-width `r || s` JOSE needs (RFC 7518 §3.4): each integer
/// left-padded to `width` bytes (32 for P-256, 48 for P-384). `None` for
/// anything else, trailing bytes and over-long integers included.
///
/// ```
/// // r = 1, s = 2 on P-256
/// let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02];
/// let jose = svcauth_jwks::ecdsa_der_to_jose(&der, 32).unwrap();
/// assert_eq!((jose.len(), jose[31], jose[63]), (64, 1, 2));
/// ```
pub fn ecdsa_der_to_jose(der: &[u8], width: usize) -> Option<Vec<u8>> {
    let mut input = der;
    let mut seq = take(&mut input, SEQUENCE)?;
    let r = strip_zeros(take(&mut seq, INTEGER)?);
    let s = strip_zeros(take(&mut seq, INTEGER)?);
    if !seq.is_empty() || !input.is_empty() || r.len() > width || s.len() > width {
        return None;
    }
    let mut out = vec![0; 2 * width];
    out[width - r.len()..width].copy_from_slice(r);
    out[2 * width - s.len()..].copy_from_slice(s);
    Some(out)
}

/// The content of a DER OCTET STRING, when `der` is exactly one (PKCS#11
/// wraps `CKA_EC_POINT` in one; some modules do not, hence the `Option`).
#[cfg_attr(not(feature = "pkcs11"), allow(dead_code))]
pub(crate) fn octet_string(der: &[u8]) -> Option<&[u8]> {
    let mut input = der;
    let value = take(&mut input, OCTET_STRING)?;
    input.is_empty().then_some(value)
}

pub(crate) fn strip_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn push_uint(out: &mut Vec<u8>, value: &[u8]) {
    let value = strip_zeros(value);
    let pad = value.first().is_none_or(|b| b & 0x80 != 0);
    out.push(INTEGER);
    push_len(out, value.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(value);
}

/// Writes an RSAPublicKey, the form aws-lc-rs verifies RSA signatures with.
pub(crate) fn rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 8);
    push_uint(&mut body, n);
    push_uint(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(SEQUENCE);
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_key_round_trips() {
        let n = [0xC3u8; 256];
        let der = rsa_public_key(&n, &[1, 0, 1]);
        let (n2, e2) = parse_rsa_public_key(&der).unwrap();
        assert_eq!(n2, n);
        assert_eq!(e2, [1, 0, 1]);
    }

    #[test]
    fn ecdsa_der_becomes_fixed_width_r_s() {
        // r with a sign byte (33 bytes), s short (31 bytes): both to 32.
        let r = [0x00]
            .iter()
            .chain(&[0x80; 32])
            .copied()
            .collect::<Vec<_>>();
        let s = [0x01; 31];
        let mut der = vec![0x30, (2 + r.len() + 2 + s.len()) as u8, 0x02, r.len() as u8];
        der.extend(&r);
        der.extend([0x02, s.len() as u8]);
        der.extend(s);
        let jose = ecdsa_der_to_jose(&der, 32).unwrap();
        assert_eq!(&jose[..32], &[0x80; 32]);
        assert_eq!(jose[32], 0);
        assert_eq!(&jose[33..], &[0x01; 31]);
        assert!(
            ecdsa_der_to_jose(&der, 16).is_none(),
            "too wide for the curve"
        );
        der.push(0);
        assert!(ecdsa_der_to_jose(&der, 32).is_none(), "trailing bytes");
    }

    #[test]
    fn truncated_der_is_refused() {
        let der = rsa_public_key(&[0x7F; 256], &[3]);
        for cut in 0..der.len() {
            assert!(parse_rsa_public_key(&der[..cut]).is_none());
        }
    }
}

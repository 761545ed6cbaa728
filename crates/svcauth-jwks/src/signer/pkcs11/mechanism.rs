//! The signing mechanism for each JOSE algorithm, and the token's answer
//! in JOSE form.

use aws_lc_rs::digest;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use svcauth_core::Algorithm;

use crate::der;

/// The mechanism for `alg`: ECDSA signs a digest made here (`CKM_ECDSA`,
/// which every token has; `CKM_ECDSA_SHA256` is optional), RSA and EdDSA
/// sign the input. ECDSA results come back `r || s` per PKCS#11, or DER from
/// tokens that deviate; both leave as JOSE's `r || s`.
pub(super) fn sign_with(
    session: &Session,
    key: ObjectHandle,
    alg: Algorithm,
    input: &[u8],
) -> Result<Vec<u8>, CkError> {
    let pss = |hash: MechanismType, mgf: PkcsMgfType, len: u64| PkcsPssParams {
        hash_alg: hash,
        mgf,
        s_len: len.into(),
    };
    let ecdsa = |hash: &'static digest::Algorithm, width: usize| -> Result<Vec<u8>, CkError> {
        let digest = digest::digest(hash, input);
        let signature = session.sign(&Mechanism::Ecdsa, key, digest.as_ref())?;
        if signature.len() == 2 * width {
            return Ok(signature);
        }
        der::ecdsa_der_to_jose(&signature, width).ok_or(CkError::Pkcs11(
            RvError::SignatureInvalid,
            cryptoki::context::Function::Sign,
        ))
    };
    match alg {
        Algorithm::EdDSA => session.sign(
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            key,
            input,
        ),
        Algorithm::ES256 => ecdsa(&digest::SHA256, 32),
        Algorithm::ES384 => ecdsa(&digest::SHA384, 48),
        Algorithm::RS384 => session.sign(&Mechanism::Sha384RsaPkcs, key, input),
        Algorithm::RS512 => session.sign(&Mechanism::Sha512RsaPkcs, key, input),
        Algorithm::PS256 => session.sign(
            &Mechanism::Sha256RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)),
            key,
            input,
        ),
        Algorithm::PS384 => session.sign(
            &Mechanism::Sha384RsaPkcsPss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)),
            key,
            input,
        ),
        Algorithm::PS512 => session.sign(
            &Mechanism::Sha512RsaPkcsPss(pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64)),
            key,
            input,
        ),
        _ => session.sign(&Mechanism::Sha256RsaPkcs, key, input),
    }
}

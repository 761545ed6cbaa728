//! The private key stays in the token: reading it fails, and a key the
//! token would let out is refused unless the danger option says otherwise.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use svcauth_jwks::pkcs11::{Pkcs11Error, Pkcs11Signer};

use super::*;

/// A session of our own on `TOKEN`, logged in: what an attacker with the
/// PIN and the host could do.
pub(crate) fn session(hsm: &Hsm) -> Session {
    let ctx = Pkcs11::new(&hsm.module).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(
        UserType::User,
        Some(&AuthPin::new(svcauth_tests::USER_PIN.into())),
    ) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => session,
        Err(e) => panic!("{e}"),
    }
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_key_cannot_be_read_out_of_the_token() {
    let Some(hsm) = softhsm(
        "extractable::the_private_key_cannot_be_read_out_of_the_token",
        &[TOKEN],
    ) else {
        return;
    };
    hsm.generate("kept", Algorithm::ES256);
    let session = session(&hsm);
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"kept".to_vec()),
        ])
        .unwrap()[0];
    let attributes = session
        .get_attributes(
            private,
            &[
                AttributeType::Value,
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::NeverExtractable,
            ],
        )
        .unwrap();
    assert!(
        !attributes.iter().any(|a| matches!(a, Attribute::Value(_))),
        "the private value was read: {attributes:?}"
    );
    for expected in [
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::NeverExtractable(true),
    ] {
        assert!(
            attributes.contains(&expected),
            "{expected:?} in {attributes:?}"
        );
    }
    // Wrapping it under a key of our own is refused too.
    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Token(false),
            ],
        )
        .unwrap();
    assert!(
        session
            .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, private)
            .is_err(),
        "the private key was wrapped out"
    );

    // A key made extractable is refused, unless the danger option is set.
    session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"loose".to_vec()),
                Attribute::EcParams(vec![
                    0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
                ]),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(b"loose".to_vec()),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    assert!(matches!(
        Pkcs11Signer::open(hsm.config(TOKEN, "loose")).await,
        Err(Pkcs11Error::Extractable)
    ));
    let opened =
        Pkcs11Signer::open(hsm.config(TOKEN, "loose").danger_allow_extractable_key()).await;
    assert!(opened.is_ok(), "{opened:?}");
}

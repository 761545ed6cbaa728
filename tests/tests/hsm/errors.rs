//! Every way opening a token key can fail is its own error, before any
//! traffic; and a PIN read from the environment works as one from a file.

use svcauth_jwks::JwsSigner;
use svcauth_jwks::pkcs11::{Pkcs11Config, Pkcs11Error, Pkcs11Signer};

use super::*;

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_are_typed_errors() {
    let Some(hsm) = softhsm("errors::start_up_failures_are_typed_errors", &[TOKEN]) else {
        return;
    };
    // PKCS#11 login is per token and process: while a session of this
    // process is logged in, a second login is not checked. A service opens
    // its key once, at start; so does this test, after closing the first.
    let good = hsm.generate("good", Algorithm::ES256).kid().to_owned();
    let open =
        |config: Pkcs11Config| Pkcs11Signer::open_blocking(&config).map(|s| s.kid().to_owned());

    let wrong_pin = hsm.dir.join("wrong-pin");
    std::fs::write(&wrong_pin, "0000-not-it\n").unwrap();
    let config = Pkcs11Config::new(&hsm.module, TOKEN)
        .pin_from_file(&wrong_pin)
        .unwrap()
        .key_label("good");
    assert!(
        matches!(open(config), Err(Pkcs11Error::Login(_))),
        "wrong PIN"
    );

    let config = hsm.config("no-such-token", "good");
    assert!(
        matches!(open(config), Err(Pkcs11Error::TokenNotFound(_))),
        "unknown token"
    );

    let config = hsm.config(TOKEN, "no-such-key");
    assert!(
        matches!(open(config), Err(Pkcs11Error::KeyNotFound(_))),
        "unknown key"
    );

    let config = Pkcs11Config::new(&hsm.module, TOKEN).key_label("good");
    assert!(matches!(open(config), Err(Pkcs11Error::Pin(_))), "no PIN");
    assert!(matches!(
        Pkcs11Config::new(&hsm.module, TOKEN).pin_from_file(hsm.dir.join("absent")),
        Err(Pkcs11Error::Pin(_))
    ));
    assert!(matches!(
        Pkcs11Config::new(&hsm.module, TOKEN).pin_from_env("SVCAUTH_TEST_NO_SUCH_VAR"),
        Err(Pkcs11Error::Pin(_))
    ));

    let config = Pkcs11Config::new("/nonexistent/libpkcs11.so", TOKEN)
        .pin_from_file(hsm.pin_file())
        .unwrap()
        .key_label("good");
    assert!(
        matches!(open(config), Err(Pkcs11Error::Module { .. })),
        "no module"
    );

    let config = hsm.config(TOKEN, "good").algorithm(Algorithm::RS256);
    assert!(
        matches!(open(config), Err(Pkcs11Error::UnsupportedKey(_))),
        "alg of another family"
    );

    let duplicate = Pkcs11Signer::generate_blocking(&hsm.config(TOKEN, "good"), Algorithm::ES256);
    assert!(
        matches!(duplicate, Err(Pkcs11Error::UnsupportedKey(_))),
        "a second key of one label"
    );

    // The PIN from the environment opens the same key.
    let config = Pkcs11Config::new(&hsm.module, TOKEN)
        .pin_from_env(PIN_VAR)
        .unwrap()
        .key_label("good");
    assert_eq!(open(config).unwrap(), good);
    // The PIN never shows in Debug.
    assert!(!format!("{:?}", hsm.config(TOKEN, "good")).contains(svcauth_tests::USER_PIN));
}

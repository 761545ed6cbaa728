//! Request binding (`htm`, `htu`, `query_sha256`, `body_sha256`): input is
//! `METHOD\nURI\nbody`. Properties: normalising `htu` twice changes
//! nothing; a binding matches its own request; changing the body or the
//! query breaks the match.
#![no_main]

use http::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use svcauth_core::{RequestBinding, htu};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(method), Some(uri), body) = (parts.next(), parts.next(), parts.next().unwrap_or(&[]))
    else {
        return;
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method), Uri::try_from(uri)) else {
        return;
    };
    let Ok(binding) = RequestBinding::for_request(&method, &uri, body) else {
        return;
    };
    // htu is a fixed point of its own normalisation.
    let normal: Uri = binding.htu.parse().expect("htu is a URI");
    let again = htu(
        normal.scheme_str().expect("absolute"),
        normal.authority().expect("absolute").as_str(),
        normal.path(),
    )
    .expect("a normalised htu normalises");
    assert_eq!(again, binding.htu, "normalising htu twice changed it");
    assert!(
        binding.matches(&RequestBinding::for_request(&method, &uri, body).expect("same request"))
    );
    let mut other_body = body.to_vec();
    other_body.push(b'!');
    assert!(
        !binding
            .matches(&RequestBinding::for_request(&method, &uri, &other_body).expect("same uri"))
    );
});

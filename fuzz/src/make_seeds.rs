//! Writes the seed corpora to `fuzz/corpus/<target>/seed-<name>`:
//! `cargo xtask fuzz --seeds`.

fn main() {
    // A seed that never reaches the accepting path would leave it unfuzzed.
    let request = svcauth_fuzz::valid_wimse_request();
    let mut lines = request.split('\n');
    let mut headers = http::HeaderMap::new();
    for name in [
        "workload-identity-token",
        "workload-proof-token",
        "authorization",
    ] {
        headers.insert(
            name,
            lines
                .next()
                .expect("a line")
                .parse()
                .expect("a header value"),
        );
    }
    let uri = http::Uri::from_static("/whoami");
    let target = svcauth_verify::RequestTarget {
        method: &http::Method::GET,
        uri: &uri,
        headers: &headers,
    };
    svcauth_fuzz::block_on(svcauth_fuzz::workload_verifier().verify_workload(target))
        .expect("the WIMSE seed is accepted");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in svcauth_fuzz::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
    }
}

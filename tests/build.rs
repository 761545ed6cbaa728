//! Which peers are missing here; see `build/peers.rs`.

include!("build/peers.rs");

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    probe_peers(
        Path::new(&manifest)
            .parent()
            .expect("tests/ is in the workspace"),
    );
}

//! Writes the seed corpora to `fuzz/corpus/<target>/seed-<name>`:
//! `cargo xtask fuzz --seeds`.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in svcauth_fuzz::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
    }
}

//! `cargo xtask tidy`: checks that keep the tree easy to change, in the
//! manner of rust-analyzer's tidy tests. It fails when
//!
//! * a Rust source file has more than [`MAX_LINES`] lines and no entry, with
//!   a reason, in [`LONG_FILES`];
//! * a package declares a dependency that none of its sources mention (and
//!   that [`UNUSED_OK`] does not explain);
//! * a package does not inherit the workspace lints, which make a public
//!   item without docs (`missing_docs`) an error under `clippy -D warnings`.
//!
//! Package data comes from `cargo metadata`; files from `git ls-files`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Longest source file without a reason.
const MAX_LINES: usize = 500;

/// Files allowed past [`MAX_LINES`], each with why.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "examples/gateway/src/main.rs",
        "one binary: its flags (a public contract), forwarding and health in one place",
    ),
    (
        "tests/tests/cli.rs",
        "one test per flag of the example binaries, by design in one place",
    ),
    (
        "crates/svcauth-sign/tests/sign.rs",
        "the sign side's behaviours share fixtures",
    ),
    (
        "crates/svcauth-jwks/tests/remote_cache.rs",
        "one loopback JWKS server drives every case",
    ),
    (
        "crates/svcauth-jwks/src/key_set.rs",
        "JWK parsing of every key type, with its tests",
    ),
];

/// Dependencies no source names, each with why it is there.
const UNUSED_OK: &[(&str, &str, &str)] = &[
    (
        "svcauth-sign",
        "svcauth-sign",
        "itself as a dev-dependency, to test its optional features",
    ),
    (
        "demo-grpc",
        "prost",
        "used by the code tonic-prost-build generates into OUT_DIR",
    ),
    (
        "demo-grpc",
        "tonic-prost",
        "used by the code tonic-prost-build generates into OUT_DIR",
    ),
    (
        "svcauth-benches",
        "jwt-authorizer",
        "renamed and used through its own name in the benches",
    ),
];

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let files = git_files(root)?;
    long_files(root, &files, &mut problems);
    let metadata = metadata(root)?;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        unused_dependencies(package, &mut problems)?;
        inherits_lints(package, &mut problems)?;
    }
    if problems.is_empty() {
        println!(
            "tidy: ok ({} Rust files, line limit {MAX_LINES})",
            files.len()
        );
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

fn git_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.rs",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("git ls-files: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| root.join(p).is_file())
        .collect())
}

fn long_files(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    for file in files {
        let lines = std::fs::read_to_string(root.join(file)).map_or(0, |t| t.lines().count());
        let name = file.to_string_lossy();
        let allowed = LONG_FILES.iter().any(|(path, _)| *path == name);
        if lines > MAX_LINES && !allowed {
            problems.push(format!(
                "{name}: {lines} lines (over {MAX_LINES}): split it by concern, or add it to LONG_FILES in xtask/src/tidy.rs with a reason"
            ));
        }
    }
    for (path, _) in LONG_FILES {
        let lines = std::fs::read_to_string(root.join(path)).map_or(0, |t| t.lines().count());
        if lines <= MAX_LINES {
            problems.push(format!(
                "{path}: {lines} lines, no longer needs its LONG_FILES entry"
            ));
        }
    }
}

fn metadata(root: &Path) -> Result<Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

fn package_dir(package: &Value) -> Result<PathBuf, String> {
    package["manifest_path"]
        .as_str()
        .and_then(|m| Path::new(m).parent())
        .map(Path::to_path_buf)
        .ok_or_else(|| "cargo metadata: a package without manifest_path".to_owned())
}

/// The text of every `.rs` file under `dir` (and the Markdown files they
/// `include_str!`, which hold doc tests, and the modules they include with
/// `#[path]`), skipping `target` and `node_modules`.
fn sources(dir: &Path, text: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "node_modules" {
                sources(&path, text);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let Ok(source) = std::fs::read_to_string(&path) else {
                continue;
            };
            for included in source.split("include_str!(\"").skip(1) {
                let Some(relative) = included.split('"').next() else {
                    continue;
                };
                if relative.ends_with(".md")
                    && let Some(parent) = path.parent()
                    && let Ok(markdown) = std::fs::read_to_string(parent.join(relative))
                {
                    text.push_str(&markdown);
                }
            }
            // A module shared between packages, included by `#[path]`.
            for included in source.split("#[path = \"").skip(1) {
                if let Some(relative) = included.split('"').next()
                    && let Some(parent) = path.parent()
                    && let Ok(module) = std::fs::read_to_string(parent.join(relative))
                {
                    text.push_str(&module);
                }
            }
            text.push_str(&source);
        }
    }
}

fn unused_dependencies(package: &Value, problems: &mut Vec<String>) -> Result<(), String> {
    let name = package["name"].as_str().unwrap_or("?");
    let dir = package_dir(package)?;
    // What each kind of dependency may be used by: normal ones by the
    // package's own code (src/, or everything when there is no src/),
    // build ones by build.rs, dev ones by anything (tests, benches, doc tests).
    let mut everything = String::new();
    sources(&dir, &mut everything);
    let mut own = String::new();
    if dir.join("src").is_dir() {
        sources(&dir.join("src"), &mut own);
    } else {
        own.clone_from(&everything);
    }
    let build = std::fs::read_to_string(dir.join("build.rs")).unwrap_or_default();
    let mut used_somewhere = BTreeSet::new();
    let mut findings = Vec::new();
    for dependency in package["dependencies"].as_array().into_iter().flatten() {
        let declared = dependency["rename"]
            .as_str()
            .or_else(|| dependency["name"].as_str())
            .unwrap_or("?");
        let ident = declared.replace('-', "_");
        let (kind, text) = match dependency["kind"].as_str() {
            Some("dev") => ("dev-dependency", &everything),
            Some("build") => ("build-dependency", &build),
            _ => ("dependency", &own),
        };
        if mentions(text, &ident) {
            used_somewhere.insert(declared.to_owned());
        } else {
            findings.push((declared.to_owned(), kind, mentions(&everything, &ident)));
        }
    }
    for (declared, kind, used_elsewhere) in findings {
        // A crate in two sections (normal and dev, say) counts once used.
        if used_somewhere.contains(&declared) && kind == "dev-dependency" {
            continue;
        }
        let explained = UNUSED_OK
            .iter()
            .any(|(p, d, _)| *p == name && *d == declared);
        if explained {
            continue;
        }
        let hint = if used_elsewhere && kind == "dependency" {
            " (only tests use it: make it a dev-dependency)"
        } else {
            ""
        };
        problems.push(format!(
            "{name}: {kind} `{declared}` is not used{hint}: remove it, or add it to UNUSED_OK in xtask/src/tidy.rs with a reason"
        ));
    }
    Ok(())
}

/// Whether `ident` appears as a path root (`ident::`), in a `use`, or in an
/// `extern crate`.
fn mentions(text: &str, ident: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    let mut rest = text;
    while let Some(at) = rest.find(ident) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + ident.len()..];
        if boundary(before)
            && (after.starts_with("::")
                || after.starts_with(" as ")
                || after.starts_with(';')
                || after.starts_with(" {")
                || after.starts_with("::{"))
        {
            return true;
        }
        rest = &rest[at + ident.len()..];
    }
    false
}

fn inherits_lints(package: &Value, problems: &mut Vec<String>) -> Result<(), String> {
    let name = package["name"].as_str().unwrap_or("?");
    let manifest = package["manifest_path"].as_str().unwrap_or("");
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("{manifest}: {e}"))?;
    let inherits = text
        .split("[lints]")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| !l.trim().is_empty()))
        .is_some_and(|line| line.replace(' ', "") == "workspace=true");
    if !inherits {
        problems.push(format!(
            "{name}: Cargo.toml lacks `[lints] workspace = true` (missing_docs and the rest)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_a_path_a_use_or_an_extern() {
        assert!(mentions("use serde_json::Value;", "serde_json"));
        assert!(mentions("let v = serde_json::json!({});", "serde_json"));
        assert!(mentions("use tokio as rt;", "tokio"));
        assert!(mentions("extern crate alloc;", "alloc"));
        assert!(!mentions("// serde_json is not used", "serde_json"));
        assert!(!mentions("use my_serde_json::Value;", "serde_json"));
        assert!(!mentions("serde_jsonish::x", "serde_json"));
    }
}

//! RELIABILITY.md is written by commands, a section each: `cargo xtask
//! fuzz --report` writes "Fuzzing", `cargo xtask soak --report` writes
//! "Soak under faults". A command replaces its own section and leaves the
//! others as their commands wrote them.

use std::path::Path;

const TITLE: &str = "# Reliability\n\n\
    Each section below is written by the command it names; do not edit by hand.\n";

/// Replaces the section under `heading` (a `## ` line) with `body`, or adds
/// it at the end.
pub(crate) fn write_section(root: &Path, heading: &str, body: &str) -> Result<(), String> {
    let path = root.join("RELIABILITY.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = replace_section(&old, heading, body);
    std::fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote the section {heading:?} of RELIABILITY.md");
    Ok(())
}

fn replace_section(old: &str, heading: &str, body: &str) -> String {
    let section = format!("{heading}\n\n{}\n", body.trim_end());
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in old.lines() {
        if line.starts_with("## ") {
            sections.push((line.to_owned(), String::new()));
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let mut out = String::from(TITLE);
    let mut placed = false;
    for (title, text) in &sections {
        out.push('\n');
        if title == heading {
            out.push_str(&section);
            placed = true;
        } else {
            out.push_str(&format!("{title}\n{}", text.trim_end()));
            out.push('\n');
        }
    }
    if !placed {
        out.push('\n');
        out.push_str(&section);
    }
    out
}

/// What `program args` printed, trimmed; empty when it could not run.
pub(crate) fn capture(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    capture("date", &["-u", "+%Y-%m-%d"])
}

/// `Machine: <cpu>, <n> cores; <rustc --version>` (no closing stop).
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "Machine: {cpu}, {cores} cores; {}",
        capture("rustc", &["--version"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_are_kept() {
        let old = "# Reliability\n\nintro\n\n## Fuzzing\n\nold fuzz\n\n## Soak\n\nold soak\n";
        let new = replace_section(old, "## Fuzzing", "new fuzz\n| a |");
        assert!(new.contains("## Fuzzing\n\nnew fuzz\n| a |\n"));
        assert!(new.contains("## Soak\n\nold soak\n"));
        assert!(!new.contains("old fuzz"));
        assert!(new.find("Fuzzing") < new.find("Soak"));
        let added = replace_section(&new, "## Floods", "x");
        assert!(added.ends_with("## Floods\n\nx\n"));
        assert_eq!(replace_section(&added, "## Floods", "x"), added);
    }
}

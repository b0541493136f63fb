//! Replays every committed fuzz input through its target: the seeds of `fuzz/corpus/<target>/` and the
//! crash inputs kept in `fuzz/regressions/<target>/`. The fuzzer itself needs nightly and runs for
//! minutes; this runs in a second on stable, so a parser that panics again on a known input fails CI.

use std::path::{Path, PathBuf};

use ids_fuzz_targets::TARGETS;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_runs_without_panicking() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut failures = Vec::new();
    for &(name, target) in TARGETS {
        let seeds = files(&fuzz.join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seed");
        let regressions = files(&fuzz.join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for &(name, _) in TARGETS {
        let file = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}

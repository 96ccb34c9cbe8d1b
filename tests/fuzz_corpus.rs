//! The fuzz corpora, replayed on every `cargo test`: each committed input (the seeds and
//! what `cargo fuzz` kept, plus any crash found and fixed, under `fuzz/regressions/`) goes
//! through the same check its fuzz target runs (`fuzz/src/lib.rs`), uninstrumented.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            n += 1;
        }
    }
    assert!(n > 0, "{target}: no corpus under {}", root.display());
    println!("{target}: {n} inputs");
}

#[test]
fn jpeg_frames_corpus() {
    replay("jpeg_frames", checks::jpeg_frames);
}

#[test]
fn raw_frames_corpus() {
    replay("raw_frames", checks::raw_frames);
}

#[test]
fn config_corpus() {
    replay("config", checks::config);
}

#[test]
fn detector_outputs_corpus() {
    replay("detector_outputs", checks::detector_outputs);
}

//! The fuzz corpora, replayed on every `cargo test`: each committed input (the seeds and
//! what `cargo fuzz` kept, plus any crash found and fixed, under `fuzz/regressions/`) goes
//! through the same check its fuzz target runs (`fuzz/src/lib.rs`), uninstrumented, in the
//! release test build.
//!
//! Then the smoke: [`NEW_INPUTS`] new inputs per target, made from the corpus by a seeded
//! mutator (bit flips, bytes set to edge values, insertions, deletions, repeats, splices of
//! two inputs, truncations; one to eight of them per input), so every run checks the same
//! inputs. This is what CI runs. Unlike `cargo fuzz run` it is not guided by coverage: that
//! search is run by hand (CONTRIBUTING.md, "Fuzzing"), and what it finds is committed to the
//! corpus, where this test replays it.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// New inputs per target made by [`mutate`] (as many as the libFuzzer smoke ran).
const NEW_INPUTS: usize = 20_000;

/// The committed inputs of `target`, in a fixed order (file names).
fn corpus(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            inputs.push((path, data));
        }
    }
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "{target}: no corpus under {}",
        root.display()
    );
    inputs
}

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = corpus(target);
    for (path, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
    println!("{target}: {} committed inputs", inputs.len());
    smoke(target, check, &inputs);
}

/// xorshift64*: the mutator's randomness, seeded per target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that find edge cases: zero, sign and size boundaries, JPEG markers.
const EDGE_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0xd8, 0xd9];

/// One to eight edits of `data` (a corpus input), `other` for splices. Inputs stay under
/// `max_len` bytes, as libFuzzer's do.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(8) {
            // flip one bit
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            // a byte to an edge value
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = EDGE_BYTES[rng.below(EDGE_BYTES.len())];
            }
            // a byte to anything
            2 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            // insert a few random bytes
            3 => {
                let i = rng.below(d.len() + 1);
                for _ in 0..1 + rng.below(4) {
                    d.insert(i, rng.next() as u8);
                }
            }
            // delete a range
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = 1 + rng.below((d.len() - i).min(64));
                d.drain(i..i + n);
            }
            // repeat a range (a marker, a header) in place
            5 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = 1 + rng.below((d.len() - i).min(64));
                let part = d[i..i + n].to_vec();
                let at = rng.below(d.len() + 1);
                d.splice(at..at, part);
            }
            // splice: our head, the other input's tail
            6 if !other.is_empty() => {
                let cut = rng.below(d.len() + 1);
                let from = rng.below(other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            // truncate
            7 if !d.is_empty() => d.truncate(rng.below(d.len())),
            _ => {}
        }
    }
    d.truncate(max_len);
    d
}

/// [`NEW_INPUTS`] mutated inputs through `check`; a failure names the input's seed and
/// writes the input where `cargo fuzz run TARGET FILE` can replay it.
fn smoke(target: &str, check: fn(&[u8]), inputs: &[(std::path::PathBuf, Vec<u8>)]) {
    let max_len = inputs
        .iter()
        .map(|(_, d)| d.len())
        .max()
        .unwrap_or(0)
        .max(4096);
    let seed = target.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng(seed);
    let mut unchanged = 0;
    for k in 0..NEW_INPUTS {
        let a = &inputs[rng.below(inputs.len())].1;
        let b = &inputs[rng.below(inputs.len())].1;
        let data = mutate(&mut rng, a, b, max_len);
        unchanged += usize::from(data == *a);
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            let out = std::env::temp_dir().join(format!("agegender-fuzz-{target}-{k}"));
            std::fs::write(&out, &data).unwrap();
            panic!(
                "{target}: new input {k} (seed {seed:#x}) fails: saved as {}; \
                 add it to fuzz/regressions/{target}/ once fixed",
                out.display()
            );
        }
    }
    // The mutator works: nearly every input differs from the one it was made from.
    assert!(
        unchanged < NEW_INPUTS / 20,
        "{target}: {unchanged} of {NEW_INPUTS} inputs are a corpus input unchanged"
    );
    println!("{target}: {NEW_INPUTS} new inputs ({unchanged} unchanged)");
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

#[test]
fn stills_corpus() {
    replay("stills", checks::stills);
}

#[test]
fn mqtt_settings_corpus() {
    replay("mqtt_settings", checks::mqtt_settings);
}

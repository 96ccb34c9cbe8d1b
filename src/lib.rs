//! agegender: an offline kiosk camera pipeline.
//!
//! A frame travels through one module per stage:
//! capture → decode → motion gate (`motion`: detect only when the scene changed) → detect → align → classify → track → draw → report, and from the
//! tracker's ended tracks, visits and counts (`visits`).
//! Each seam is a small trait or a plain struct; nothing here is global.

pub mod align;
pub mod bench;
pub mod capture;
pub mod classify;
pub mod config;
pub mod decode;
pub mod detect;
pub mod display;
pub mod draw;
pub mod eval;
pub mod eval_seq;
pub mod heap;
pub mod model_files;
pub mod motion;
pub mod mqtt;
pub mod pipeline;
pub mod quality;
pub mod report;
pub mod rgb;
pub mod serial;
pub mod service;
pub mod track;
pub mod tract_runner;
pub mod visits;

/// `text` on one line: every run of white space (newlines included) folded to one space. Error
/// messages are one line each on stderr and in status lines.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

//! What a step of the frame loop is made of: its stages, as [`super::Pipeline::step_probed`]
//! marks them, and what a step did.

/// The stages of one frame, as marked by [`Pipeline::step_probed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Capture,
    Decode,
    /// The motion gate's measure (src/motion.rs), on frames due for detection.
    Motion,
    Detect,
    Align,
    Classify,
    Track,
    Display,
    Report,
    /// End of the step (not a stage).
    Done,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Capture,
        Stage::Decode,
        Stage::Motion,
        Stage::Detect,
        Stage::Align,
        Stage::Classify,
        Stage::Track,
        Stage::Display,
        Stage::Report,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Capture => "capture",
            Stage::Decode => "decode",
            Stage::Motion => "motion",
            Stage::Detect => "detect",
            Stage::Align => "align",
            Stage::Classify => "classify",
            Stage::Track => "track",
            Stage::Display => "display",
            Stage::Report => "report",
            Stage::Done => "done",
        }
    }
}

/// What one [`Pipeline::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// A frame went through; this many faces were reported.
    Frame { faces: usize, detected: bool },
    /// No frame this time (timeout, capture or decode error, camera reconnected); counted.
    Skipped,
    /// The source has no more frames, or the loop was asked to stop.
    End,
}

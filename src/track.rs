//! Track: associate faces across frames by IoU, give each a stable id and smooth its labels.

use crate::classify::Attributes;
use crate::detect::Detection;

/// A face as the rest of the program sees it: where it is, who it is, and smoothed labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackedFace {
    pub id: u64,
    pub detection: Detection,
    /// Smoothed labels (what is drawn and reported).
    pub attributes: Attributes,
    /// Frames this track has been seen.
    pub hits: u32,
}

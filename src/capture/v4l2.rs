//! V4L2 camera capture (mmap streaming). Owned by the board work; see issue 4.

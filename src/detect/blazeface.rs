//! BlazeFace (MediaPipe) detector through tract.

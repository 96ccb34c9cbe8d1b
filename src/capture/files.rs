//! Replayed sources: a directory of images, or an `.mjpeg` file of concatenated JPEG frames.

//! Headless displays: PNG files into a directory, or nothing at all.

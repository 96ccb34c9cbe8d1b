//! YuNet detector through tract.

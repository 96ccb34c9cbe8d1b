//! Heap policy for a process that runs for months.
//!
//! glibc's malloc moves its mmap threshold up at run time: after the first large block is
//! freed, blocks of that size come from the main heap instead of their own mappings. tract
//! allocates and frees several blocks of 100 KiB to a few MiB per inference, and in the main
//! heap they fragment around small long-lived allocations: the resident set then steps up
//! by 4 to 7 MiB at a moment that differs from run to run (measured by `tests/soak.rs` over
//! the same 3,000 frames: +12% at frame 1,200 on one machine, at frame 600 on another), while
//! the heap in use stays flat. A fixed threshold turns that off: every block of 64 KiB or more
//! gets its own mapping and goes back to the kernel when freed, so the resident set stays
//! flat from the first frames, and lower (28.6 MiB against 38.9 MiB in the same soak).
//!
//! Other C libraries (musl) and other systems are left alone.

/// Blocks at least this large are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 64 * 1024;

/// Fix the allocator's mmap threshold at [`MMAP_THRESHOLD`] (glibc only). Returns whether the
/// setting took effect. Call once at start-up, before the models are loaded.
pub fn fix_mmap_threshold() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // mallopt(3): M_MMAP_THRESHOLD is -3 in glibc's <malloc.h>; setting it also turns off
        // the dynamic adjustment of the trim threshold. Returns 1 on success.
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt only changes allocator parameters; any value is accepted or refused.
        unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD as std::ffi::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

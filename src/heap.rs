//! Heap policy for a process that runs for months at a steady frame rate.
//!
//! tract allocates and frees the same blocks on every inference: one buffer and one `Arc` per
//! node output, 100 KiB to a few MiB each for the early layers (about 1,400 requests per frame
//! with one face, see `crate::detect`). No tract 0.23 API avoids that. Left to glibc, those
//! requests cost in one of two ways, both measured with `agegender bench` on the same stream:
//!
//! - glibc's default moves its mmap threshold up at run time, so the blocks come from the main
//!   heap, where they fragment around small long-lived allocations: the resident set steps up
//!   by 4 to 7 MiB at a moment that differs from run to run (`tests/soak.rs`: +12% at frame
//!   1,200 on one machine, at frame 600 on another);
//! - a fixed 64 KiB threshold keeps the resident set flat, but every large block is then a
//!   fresh mapping whose pages fault in (and are zeroed by the kernel) on every frame: the
//!   detector took 54-58 ms a frame instead of 33-34 ms.
//!
//! [`PoolAlloc`] removes both: a freed block goes onto a free list of its size class and the
//! next request of that class takes it back, so after the first frames a frame's requests are
//! all served from blocks the process already holds and touched, and none reaches the system
//! allocator. The pool keeps, per size class, at most as many blocks as were ever in use at
//! once; the frame loop asks for the same sizes every frame, so that is a fixed amount.
//! Blocks freed before [`start_pooling`] go back to the system. The binary starts pooling in
//! `run` and `bench` once the models are loaded, so what loading needed is not kept for the
//! process's lifetime; `image` and `eval` never pool (their pictures may all differ in size,
//! and a pool keeps a block of every size class it has seen).
//!
//! It also counts, per thread, requests, bytes in use and fresh blocks taken from the system
//! allocator: `agegender bench`, the allocation tests and the soak test read those.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Blocks of at least this size that do reach the system allocator (pool misses, blocks too
/// large to pool) get their own mapping, so they never fragment the main heap.
pub const MMAP_THRESHOLD: usize = 64 * 1024;

/// Largest block the pool keeps; larger ones go to the system allocator each time.
pub const MAX_POOLED: usize = 1 << 30;

/// Alignment buckets: a pooled block is allocated with the smallest of these that its layout
/// needs. Layouts aligned beyond the last are not pooled.
const ALIGNS: [usize; 4] = [16, 64, 128, 4096];
/// Sizes up to `SMALL` are classed 16 bytes apart...
const SMALL: usize = 128;
const N_SMALL: usize = SMALL / 16;
/// ...and above it in eight classes per doubling (at most 12.5% of a block is slack).
const STEPS_LOG2: u32 = 3;
const N_CLASSES: usize = N_SMALL + (MAX_POOLED.trailing_zeros() as usize - 7) * (1 << STEPS_LOG2);

/// The size class of a request of `size` bytes (`1..=MAX_POOLED`).
fn size_class(size: usize) -> usize {
    if size <= SMALL {
        return size.max(1).div_ceil(16) - 1;
    }
    // 2^p < size <= 2^(p+1), p >= 7
    let p = usize::BITS - 1 - (size - 1).leading_zeros();
    let k = (size - (1 << p)).div_ceil(1 << (p - STEPS_LOG2)); // 1..=8
    N_SMALL + (p as usize - 7) * (1 << STEPS_LOG2) + (k - 1)
}

/// The size of the blocks kept for size class `class`.
fn class_size(class: usize) -> usize {
    if class < N_SMALL {
        return (class + 1) * 16;
    }
    let c = class - N_SMALL;
    let base = 1usize << (7 + c / (1 << STEPS_LOG2));
    base + (c % (1 << STEPS_LOG2) + 1) * (base >> STEPS_LOG2)
}

/// Where a layout's blocks are pooled: (alignment bucket, size class) and the layout the
/// blocks are allocated with. `None`: not pooled.
fn slot(layout: Layout) -> Option<(usize, usize, Layout)> {
    if layout.size() > MAX_POOLED {
        return None;
    }
    let bucket = ALIGNS.iter().position(|&a| a >= layout.align())?;
    let class = size_class(layout.size());
    let cap = class_size(class);
    // cap is a multiple of 16 up to 2^30 and the alignment a power of two: always valid.
    let block = Layout::from_size_align(cap, ALIGNS[bucket]).ok()?;
    Some((bucket, class, block))
}

/// One free list: a spin lock and the head of an intrusive singly linked list (each free
/// block's first word points to the next). A spin lock because the allocator must not
/// allocate or depend on the platform's mutex; it is held for a few instructions.
struct FreeList {
    locked: AtomicBool,
    head: UnsafeCell<*mut u8>,
}

// SAFETY: `head` is only read or written while `locked` is held.
unsafe impl Sync for FreeList {}

impl FreeList {
    const fn new() -> Self {
        FreeList {
            locked: AtomicBool::new(false),
            head: UnsafeCell::new(std::ptr::null_mut()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut *mut u8) -> R) -> R {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: the lock is held until the store below.
        let r = f(unsafe { &mut *self.head.get() });
        self.locked.store(false, Ordering::Release);
        r
    }

    /// A free block, or null.
    fn pop(&self) -> *mut u8 {
        self.with(|head| {
            let p = *head;
            if !p.is_null() {
                // SAFETY: every block on the list is at least 16 bytes, 16-aligned, and its
                // first word was written by `push`.
                *head = unsafe { *(p as *const *mut u8) };
            }
            p
        })
    }

    /// # Safety
    /// `p` is a block of this list's class, no longer used by anyone.
    unsafe fn push(&self, p: *mut u8) {
        self.with(|head| {
            // SAFETY: see above; the block is ours now.
            unsafe { *(p as *mut *mut u8) = *head };
            *head = p;
        })
    }
}

static POOLING: AtomicBool = AtomicBool::new(false);

static POOL: [[FreeList; N_CLASSES]; ALIGNS.len()] =
    [const { [const { FreeList::new() }; N_CLASSES] }; ALIGNS.len()];

/// The counters of every thread together (the stage-parallel loop's threads).
static REQUESTS_ALL: AtomicU64 = AtomicU64::new(0);
static FRESH_ALL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
    static FRESH: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

/// The calling thread's allocation counters (see [`PoolAlloc::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCounts {
    /// Allocation requests (`alloc`, `alloc_zeroed`, `realloc`) made by the program.
    pub requests: u64,
    /// Of those, the ones that reached the system allocator (pool misses and unpooled sizes).
    pub fresh: u64,
}

/// The binary's global allocator: a size-class pool in front of the system allocator, with
/// per-thread counters. Install it with `#[global_allocator]`.
pub struct PoolAlloc;

impl PoolAlloc {
    /// Allocation requests made so far by the calling thread.
    pub fn count() -> u64 {
        REQUESTS.try_with(Cell::get).unwrap_or(0)
    }
    /// The calling thread's counters.
    pub fn counts() -> AllocCounts {
        AllocCounts {
            requests: Self::count(),
            fresh: FRESH.try_with(Cell::get).unwrap_or(0),
        }
    }
    /// The counters of all threads together.
    pub fn process_counts() -> AllocCounts {
        AllocCounts {
            requests: REQUESTS_ALL.load(Ordering::Relaxed),
            fresh: FRESH_ALL.load(Ordering::Relaxed),
        }
    }
    /// Bytes requested minus bytes freed by the calling thread (the heap in use as the program
    /// sees it: unlike the resident set, pooled and cached blocks do not show).
    pub fn live_bytes() -> i64 {
        LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
    }

    #[inline]
    fn request(delta: i64) {
        REQUESTS_ALL.fetch_add(1, Ordering::Relaxed);
        let _ = REQUESTS.try_with(|c| c.set(c.get() + 1));
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + delta));
    }
    #[inline]
    fn fresh() {
        FRESH_ALL.fetch_add(1, Ordering::Relaxed);
        let _ = FRESH.try_with(|c| c.set(c.get() + 1));
    }

    /// # Safety
    /// As `GlobalAlloc::alloc`.
    unsafe fn take(layout: Layout, zeroed: bool) -> *mut u8 {
        let Some((bucket, class, block)) = slot(layout) else {
            Self::fresh();
            // SAFETY: forwarded unchanged.
            return unsafe {
                if zeroed {
                    System.alloc_zeroed(layout)
                } else {
                    System.alloc(layout)
                }
            };
        };
        let p = POOL[bucket][class].pop();
        if p.is_null() {
            Self::fresh();
            // SAFETY: `block` has a non-zero size.
            return unsafe {
                if zeroed {
                    System.alloc_zeroed(block)
                } else {
                    System.alloc(block)
                }
            };
        }
        if zeroed {
            // SAFETY: the block holds at least `layout.size()` bytes.
            unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    unsafe fn give(ptr: *mut u8, layout: Layout) {
        match slot(layout) {
            // SAFETY: `ptr` was taken for this same layout, hence this same class.
            Some((bucket, class, _)) if pooling() => unsafe { POOL[bucket][class].push(ptr) },
            // SAFETY: pooled layouts are always allocated with the class layout.
            Some((_, _, block)) => unsafe { System.dealloc(ptr, block) },
            // SAFETY: unpooled layouts come from `System` unchanged.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }
}

// SAFETY: every block handed out is either a pooled block of the request's size class (at
// least the requested size, with the alignment bucket's alignment, which is at least the
// requested one) allocated from `System` with the class layout, or a `System` block of the
// exact layout. `dealloc` recomputes the same class from the same layout, so a block always
// returns to the list it belongs to, or (before `start_pooling`) to `System` with the same
// class layout it was allocated with.
unsafe impl GlobalAlloc for PoolAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::request(layout.size() as i64);
        // SAFETY: caller's contract.
        unsafe { Self::take(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::request(layout.size() as i64);
        // SAFETY: caller's contract.
        unsafe { Self::take(layout, true) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::request(new_size as i64 - layout.size() as i64);
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, fits.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (slot(layout), slot(new_layout)) {
            (None, None) => {
                Self::fresh();
                // SAFETY: unpooled on both sides: forwarded unchanged.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            // Same class: the block already has room.
            (Some((b0, c0, _)), Some((b1, c1, _))) if (b0, c0) == (b1, c1) => ptr,
            _ => {
                // SAFETY: caller's contract; the old block is copied, then given back.
                unsafe {
                    let new = Self::take(new_layout, false);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        Self::give(ptr, layout);
                    }
                    new
                }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() - layout.size() as i64));
        // SAFETY: caller's contract.
        unsafe { Self::give(ptr, layout) }
    }
}

/// Start keeping freed blocks. Until then a freed block goes straight back to the system
/// allocator, so what model loading needs (protobuf, graph rewrites) is not held for the
/// process's lifetime. The binary calls it in its frame loops once the models are loaded; it
/// cannot be undone.
pub fn start_pooling() {
    POOLING.store(true, Ordering::Relaxed);
}

/// Whether [`start_pooling`] has been called.
pub fn pooling() -> bool {
    POOLING.load(Ordering::Relaxed)
}

/// Fix the allocator's mmap threshold at [`MMAP_THRESHOLD`] (glibc only), so that blocks the
/// pool does not serve never fragment the main heap. Returns whether the setting took effect.
/// Call once at start-up, before the models are loaded.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_cover_every_size_with_little_slack() {
        let mut last = (0, 16);
        for size in (1..=70_000).chain([1 << 20, (1 << 20) + 1, MAX_POOLED - 1, MAX_POOLED]) {
            let class = size_class(size);
            let cap = class_size(class);
            assert!(class < N_CLASSES, "size {size}: class {class}");
            assert!(cap >= size, "size {size}: block {cap}");
            assert_eq!(cap % 16, 0, "size {size}: block {cap}");
            if size > SMALL {
                assert!(
                    (cap - size) * 8 < size,
                    "size {size}: block {cap} wastes over 1/8"
                );
            }
            // classes grow with the size, and a class always has the same block size
            if size <= 70_000 {
                assert!(class >= last.0, "size {size}");
                if class == last.0 {
                    assert_eq!(cap, last.1, "size {size}");
                }
                last = (class, cap);
            }
        }
        assert_eq!(size_class(MAX_POOLED), N_CLASSES - 1);
    }

    #[test]
    fn each_class_starts_just_above_the_one_below() {
        for class in 0..N_CLASSES {
            let cap = class_size(class);
            assert_eq!(size_class(cap), class, "class {class}");
            if class > 0 {
                assert_eq!(
                    size_class(class_size(class - 1) + 1),
                    class,
                    "class {class}"
                );
            }
        }
    }

    #[test]
    fn oversized_and_overaligned_layouts_are_not_pooled() {
        assert!(slot(Layout::from_size_align(MAX_POOLED + 1, 16).unwrap()).is_none());
        assert!(slot(Layout::from_size_align(64, 8192).unwrap()).is_none());
        let (_, _, block) = slot(Layout::from_size_align(100, 32).unwrap()).unwrap();
        assert_eq!((block.size(), block.align()), (112, 64));
    }

    #[test]
    fn a_freed_block_is_handed_out_again_and_zeroed_when_asked() {
        let a = PoolAlloc;
        start_pooling();
        // An odd size no other test or the harness is likely to use at the same time.
        let layout = Layout::from_size_align(777_777, 128).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % 128, 0);
            std::ptr::write_bytes(p, 0xab, layout.size());
            a.dealloc(p, layout);
            let before = PoolAlloc::counts();
            let q = a.alloc_zeroed(layout);
            let after = PoolAlloc::counts();
            assert_eq!(after.requests - before.requests, 1);
            assert_eq!(after.fresh, before.fresh, "the pooled block was not reused");
            assert_eq!(q, p);
            let s = std::slice::from_raw_parts(q, layout.size());
            assert!(
                s.iter().all(|&b| b == 0),
                "alloc_zeroed handed out dirty memory"
            );
            // growing within the class keeps the block; beyond it copies the contents
            std::ptr::write_bytes(q, 7, layout.size());
            let r = a.realloc(q, layout, layout.size() + 16);
            assert_eq!(r, q);
            let grown = Layout::from_size_align(layout.size() + 16, 128).unwrap();
            let big = a.realloc(r, grown, 2 * layout.size());
            assert_ne!(big, r);
            let s = std::slice::from_raw_parts(big, layout.size());
            assert!(s.iter().all(|&b| b == 7), "realloc lost the contents");
            a.dealloc(
                big,
                Layout::from_size_align(2 * layout.size(), 128).unwrap(),
            );
        }
    }
}

//! Keeping memory flat on the data path.
//!
//! The tools move data in buffers of several MiB. glibc serves a large
//! allocation with mmap, but after the first such buffer is freed it raises
//! its mmap threshold to that size, and from then on serves the buffers
//! from its per-thread heaps, where they fragment: measured, s3-put's peak
//! RSS grew from 182 MiB after 1 GiB to 262 MiB after 8 GiB. A fixed
//! threshold keeps large buffers in mmap, returned to the system on free.

/// Buffers of this size or more are mapped and unmapped whole.
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Call once at start-up, before the data path allocates.
pub fn keep_large_buffers_unpooled() {
    // SAFETY: mallopt only changes allocator parameters; it is called
    // before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

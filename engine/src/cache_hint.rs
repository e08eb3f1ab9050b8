//! Asking the CPU to start loading a cache line that is about to be read: a pipelined
//! batch names the next command's key before it runs, so its index entry's memory load
//! overlaps the command before it instead of stalling its own lookup.

/// Starts loading the cache line holding `r`; no effect on other architectures.
#[inline]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)] // One CPU hint (see SAFETY).
    // SAFETY: SSE is part of the x86_64 baseline, so the instruction exists on every
    // CPU this code runs on; a prefetch only hints the cache and never faults, and
    // `r` is a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

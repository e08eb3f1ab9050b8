//! How the process gets the allocator to give memory back. glibc raises its mmap
//! threshold each time a large block is freed (up to 32 MiB), after which large
//! buffers come from the heap and stay in the process when freed: a burst of large
//! requests left hundreds of MiB behind. A fixed threshold keeps blocks of 256 KiB and
//! more (grown connection buffers, large values) in their own mappings, returned to
//! the system as soon as they are freed.

/// Blocks at least this large get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;

/// Applies the tuning; call once, first thing in `main`.
#[allow(unsafe_code)] // One FFI call into the C library (see SAFETY).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tunables, takes no pointers, and
    // runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

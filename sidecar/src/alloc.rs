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

/// What the allocator holds, from its own statistics (not a sum of caskade's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes handed out to the program and not yet freed.
    pub allocated: u64,
    /// Bytes the allocator has from the system: its arenas (free chunks included) and
    /// the blocks it mapped on their own.
    pub held: u64,
}

/// The allocator's figures, where it reports them (glibc).
#[allow(unsafe_code)] // One FFI call into the C library (see SAFETY).
pub fn usage() -> Option<Usage> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments, returns a plain struct by value and
        // only reads the allocator's bookkeeping under its own locks.
        let m = unsafe { libc::mallinfo2() };
        Some(Usage {
            allocated: (m.uordblks + m.hblkhd) as u64,
            held: (m.arena + m.hblkhd) as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_reports_what_it_hands_out() {
        let Some(before) = usage() else { return };
        let block = vec![1u8; 8 << 20];
        let during = usage().expect("figures");
        assert!(during.allocated >= before.allocated + (8 << 20) - (1 << 20));
        assert!(during.held >= during.allocated);
        drop(block);
        let after = usage().expect("figures");
        assert!(after.allocated < during.allocated);
    }
}

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

/// Free bytes inside the allocator's heaps worth handing back to the system.
const TRIM_AT: u64 = 32 << 20;

/// Gives the system back the free memory the allocator keeps inside its heaps, when
/// there is much of it. glibc returns only the top of a heap by itself; the index's
/// tables, which grow by steps, leave their old arrays free in the middle (about 20
/// bytes per key after filling 10M keys). Returns whether it trimmed.
#[allow(unsafe_code)] // One FFI call into the C library (see SAFETY).
pub fn trim_if_wasteful() -> bool {
    let Some(u) = usage() else {
        return false;
    };
    let free = u.held.saturating_sub(u.allocated);
    if free < TRIM_AT || free < u.allocated / 8 {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and no pointers; it only releases free pages
    // of the allocator's own heaps, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_reports_what_it_hands_out() {
        if usage().is_none() {
            return;
        }
        // The figures are the whole process', and other tests allocate and free on
        // their threads meanwhile: each attempt checks every relation, and one attempt
        // in a quiet moment must see them all.
        let mut seen = Vec::new();
        for _ in 0..8 {
            let before = usage().expect("figures");
            // black_box: an optimised build would otherwise never make the unused block.
            let block = std::hint::black_box(vec![1u8; 8 << 20]);
            let during = usage().expect("figures");
            drop(block);
            let after = usage().expect("figures");
            if during.allocated >= before.allocated + (8 << 20) - (1 << 20)
                && during.held >= during.allocated
                && after.allocated < during.allocated
            {
                return;
            }
            seen.push((before, during, after));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("an 8 MiB block was never seen coming and going: {seen:?}");
    }

    #[test]
    fn free_memory_inside_the_heaps_is_handed_back_when_there_is_much() {
        if usage().is_none() {
            return;
        }
        // Many mid-sized blocks (below the mapping threshold, so in the heap), then
        // every other one freed: free chunks in the middle of the heap.
        let mut blocks: Vec<Vec<u8>> = (0..2048).map(|_| vec![7u8; 100 << 10]).collect();
        let keep: Vec<Vec<u8>> = blocks.drain(..).step_by(2).collect();
        let rss = || {
            std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map_or(0, |pages| pages * 4096)
        };
        let before = rss();
        assert!(trim_if_wasteful(), "100 MiB free inside the heap");
        assert!(
            rss() + (50 << 20) < before,
            "resident memory fell from {before}"
        );
        drop(keep);
    }
}

//! Splitting a recovery step over threads: contiguous ranges of items of about equal
//! weight, one per thread, each run on a scoped thread (or inline when there is one).

use std::ops::Range;

/// Up to this many threads, however many cores there are.
const MAX_THREADS: usize = 8;

/// The threads this machine offers for a parallel step.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

/// Runs `f` over `0..n` split into at most `threads` contiguous ranges of about equal
/// weight, where `before(i)` is the weight of items `0..i` (so `before(n)` is the
/// total); returns each range's result in order. A panic in a thread is resumed here.
pub(crate) fn split<T: Send>(
    n: usize,
    threads: usize,
    before: impl Fn(usize) -> u64,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    let total = before(n).max(1);
    let mut cuts = vec![0usize];
    for i in 1..n {
        if cuts.len() < threads && before(i) * threads as u64 >= total * cuts.len() as u64 {
            cuts.push(i);
        }
    }
    cuts.push(n);
    cuts.dedup();
    if cuts.len() <= 2 {
        return vec![f(0..n)];
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let range = w[0]..w[1];
                s.spawn(move || f(range))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn ranges_cover_everything_once_in_order_and_balance_the_weight() {
        let weights: Vec<u64> = (0..1000u64).map(|i| 1 + i % 7).collect();
        let prefix: Vec<u64> = std::iter::once(0)
            .chain(weights.iter().scan(0, |a, w| {
                *a += w;
                Some(*a)
            }))
            .collect();
        let ranges = split(weights.len(), 4, |i| prefix[i], |r| r);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[3].end, 1000);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        let total = prefix[1000];
        for r in &ranges {
            let w = prefix[r.end] - prefix[r.start];
            assert!(w.abs_diff(total / 4) <= 8, "{w} of {total}");
        }
        // One thread, or nothing to split: one range, run inline.
        assert_eq!(split(10, 1, |i| i as u64, |r| r), vec![0..10]);
        assert_eq!(split(0, 4, |_| 0, |r| r), vec![0..0]);
    }
}

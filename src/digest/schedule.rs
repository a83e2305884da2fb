//! Which worker hashes what, and with which kernel.
//!
//! A SHA-256 stream is a chain of dependent rounds, so one stream leaves the SHA unit half idle;
//! two streams interleaved on one core ([`super::sha256ni`]) get about 1.7× the bytes per core,
//! but each of the two goes slower than it would alone. Pairing is therefore right for
//! throughput (many files) and wrong for latency (one file that alone takes as long as everyone
//! else's share). The planner tries a few plans — the `k` largest items alone and the rest in
//! pairs of neighbours by size, for the `k` that matter — simulates each as the workers will run
//! it (jobs pulled largest first by whichever worker is free), and keeps the one that finishes
//! first. The result is a job list, not a fixed assignment: workers still pull jobs dynamically,
//! so a core slowed by other load does not hold the rest back.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bytes per core-second of two interleaved streams relative to one stream (measured by
/// `benches/sha256_kernels.rs`: 2.48 vs 1.46 GB/s on the development CPU).
const PAIR_SPEEDUP: f64 = 1.7;
/// Fixed cost of one item (open, fstat, map, close, the digest), in bytes of single-stream
/// hashing: ~20 µs at 1.5 GB/s.
const ITEM_OVERHEAD: f64 = 32.0 * 1024.0;

/// One unit of work for a worker: an item alone, or two in lock-step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    pub a: usize,
    pub b: Option<usize>,
}

/// Estimated time of a job, in bytes of single-stream hashing.
fn cost(sizes: &[u64], j: Job) -> f64 {
    let sa = sizes[j.a] as f64;
    match j.b {
        None => sa + ITEM_OVERHEAD,
        Some(b) => {
            let sb = sizes[b] as f64;
            let (lo, hi) = if sa < sb { (sa, sb) } else { (sb, sa) };
            2.0 * lo / PAIR_SPEEDUP + (hi - lo) + 2.0 * ITEM_OVERHEAD
        }
    }
}

/// When the last worker finishes `jobs` (already in pull order) on `workers` workers.
fn makespan(sizes: &[u64], jobs: &[Job], workers: usize) -> f64 {
    // Free times as ordered integers (f64 has no Ord); sub-byte precision is irrelevant.
    let mut free: BinaryHeap<Reverse<u64>> = (0..workers).map(|_| Reverse(0)).collect();
    let mut end = 0u64;
    for &j in jobs {
        let Reverse(t) = free.pop().unwrap_or(Reverse(0));
        let done = t.saturating_add(cost(sizes, j) as u64);
        end = end.max(done);
        free.push(Reverse(done));
    }
    end as f64
}

/// The `k` largest items alone, the others paired with their neighbour by size; jobs in pull
/// order (longest first). `order` lists item indices largest first.
fn plan_k(sizes: &[u64], order: &[usize], k: usize) -> Vec<Job> {
    let k = k.min(order.len());
    let mut jobs: Vec<Job> = order[..k].iter().map(|&a| Job { a, b: None }).collect();
    for c in order[k..].chunks(2) {
        jobs.push(Job {
            a: c[0],
            b: c.get(1).copied(),
        });
    }
    jobs.sort_by(|x, y| cost(sizes, *y).total_cmp(&cost(sizes, *x)));
    jobs
}

/// Plan the jobs for items of `sizes` on `workers` workers. Without `pairs` (another algorithm,
/// or no SHA extensions) every item runs alone, largest first.
pub(crate) fn plan(sizes: &[u64], workers: usize, pairs: bool) -> Vec<Job> {
    let workers = workers.max(1);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| Reverse(sizes[i]));
    let n = order.len();
    if !pairs || n < 2 {
        return order.into_iter().map(|a| Job { a, b: None }).collect();
    }
    // Only items big enough to dominate a worker's share are worth running alone; with many
    // small files none is, and the single all-pairs plan is evaluated.
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let share = total / (workers as f64 * PAIR_SPEEDUP);
    let big = order
        .iter()
        .take_while(|&&i| sizes[i] as f64 * 2.0 > share)
        .count();
    let mut candidates: Vec<usize> = (0..=big.min(2 * workers + 1)).collect();
    if n <= 4 * workers {
        candidates.push(n);
    }
    let mut best: Option<(f64, Vec<Job>)> = None;
    for k in candidates {
        let jobs = plan_k(sizes, &order, k);
        let m = makespan(sizes, &jobs, workers);
        // Ties go to the plan with more pairs (fewer k), which costs less CPU.
        if best.as_ref().is_none_or(|(bm, _)| m < *bm * 0.999) {
            best = Some((m, jobs));
        }
    }
    best.map(|(_, j)| j).unwrap_or_default()
}

/// No schedule finishes before `max(largest alone, total / (workers × PAIR_SPEEDUP))`.
#[cfg(test)]
fn lower_bound(sizes: &[u64], workers: usize) -> f64 {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let largest = sizes.iter().copied().max().unwrap_or(0) as f64;
    largest.max(total / (workers as f64 * PAIR_SPEEDUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn covered(jobs: &[Job], n: usize) {
        let mut seen = vec![0u32; n];
        for j in jobs {
            seen[j.a] += 1;
            if let Some(b) = j.b {
                seen[b] += 1;
            }
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "every item exactly once: {seen:?}"
        );
    }

    /// The plan is never worse than running everything alone (largest first) or everything in
    /// pairs (the two earlier strategies), and stays near the bound for the shapes the issue
    /// names.
    fn check(sizes: &[u64], workers: usize) -> Vec<Job> {
        let jobs = plan(sizes, workers, true);
        covered(&jobs, sizes.len());
        let m = makespan(sizes, &jobs, workers);
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&i| Reverse(sizes[i]));
        let singles = makespan(sizes, &plan_k(sizes, &order, sizes.len()), workers);
        let pairs = makespan(sizes, &plan_k(sizes, &order, 0), workers);
        assert!(
            m <= singles.min(pairs) * 1.0001,
            "{sizes:?} on {workers}: {m} vs singles {singles}, pairs {pairs}"
        );
        jobs
    }

    fn near_bound(sizes: &[u64], workers: usize) {
        let jobs = check(sizes, workers);
        let m = makespan(sizes, &jobs, workers);
        let lb = lower_bound(sizes, workers);
        assert!(
            m <= lb * 1.2 + sizes.len() as f64 * ITEM_OVERHEAD,
            "{sizes:?} on {workers}: {m} vs bound {lb}"
        );
    }

    #[test]
    fn two_big_files_use_two_cores() {
        near_bound(&[512 * MIB, 512 * MIB], 2);
        let jobs = check(&[512 * MIB, 512 * MIB], 2);
        assert_eq!(jobs.len(), 2);
        assert!(jobs.iter().all(|j| j.b.is_none()), "{jobs:?}");
    }

    #[test]
    fn one_file_runs_alone() {
        assert_eq!(check(&[1 << 30], 2), vec![Job { a: 0, b: None }]);
        assert_eq!(check(&[5], 8), vec![Job { a: 0, b: None }]);
    }

    #[test]
    fn twice_the_cores_pairs_everything() {
        near_bound(&[512 * MIB; 4], 2);
        let jobs = check(&[512 * MIB; 4], 2);
        assert_eq!(jobs.len(), 2);
        assert!(jobs.iter().all(|j| j.b.is_some()), "{jobs:?}");
        let jobs = check(&[100 * MIB; 16], 8);
        assert!(jobs.iter().all(|j| j.b.is_some()), "{jobs:?}");
    }

    #[test]
    fn skewed_big_file_alone_small_ones_paired() {
        let mut sizes = vec![1 << 30];
        sizes.extend([64 * MIB; 8]);
        near_bound(&sizes, 2);
        let jobs = check(&sizes, 2);
        let big = jobs.iter().find(|j| j.a == 0 || j.b == Some(0)).unwrap();
        assert_eq!(
            *big,
            Job { a: 0, b: None },
            "the critical file must not be slowed"
        );
        assert!(jobs.iter().filter(|j| j.a != 0).all(|j| j.b.is_some()));
        // Pulled first, so it starts at once.
        assert_eq!(jobs[0], Job { a: 0, b: None });
    }

    #[test]
    fn three_and_odd_mixes_stay_near_the_bound() {
        for workers in [1, 2, 3, 4, 8] {
            for sizes in [
                vec![512 * MIB; 3],
                vec![512 * MIB; workers],
                vec![512 * MIB; 2 * workers],
                vec![512 * MIB; 2 * workers + 1],
                vec![900 * MIB, 300 * MIB, 300 * MIB],
                vec![MIB, 2 * MIB, 700 * MIB, 3, 0, 40 * MIB],
                (0..1000).map(|i| 4096 + i * 7).collect(),
            ] {
                check(&sizes, workers);
            }
        }
    }

    #[test]
    fn without_pairs_everything_alone_largest_first() {
        let jobs = plan(&[1, 30, 20], 2, false);
        assert_eq!(
            jobs,
            vec![
                Job { a: 1, b: None },
                Job { a: 2, b: None },
                Job { a: 0, b: None }
            ]
        );
        assert!(plan(&[], 4, true).is_empty());
    }

    #[test]
    fn many_small_files_all_paired() {
        let sizes: Vec<u64> = (0..100_000u64).map(|i| 1024 + i % 977).collect();
        let jobs = plan(&sizes, 2, true);
        covered(&jobs, sizes.len());
        assert!(jobs.iter().filter(|j| j.b.is_none()).count() <= 1);
        near_bound(&sizes, 2);
    }
}

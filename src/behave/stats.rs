//! Divergence statistics over model outputs. Pure functions over probability rows and
//! predictions, so they are unit-tested without models.
//!
//! Why these (measured, docs/behave.md): clean-input drift does not separate backdoored from benign
//! fine-tunes (benign ones drift *more*), so it is reported only. The verdict uses the excess
//! targeted flip rate under probes, `r[p,c,s] = P(cand(x⊕p)=c | base(x)=s) − P(base(x⊕p)=c | base(x)=s)`,
//! and takes the median over source classes `s ≠ c`: a backdoor sends every source class to its
//! target, benign drift on off-manifold probes moves only a few.

use serde::Serialize;

/// Jensen–Shannon divergence in bits (0..=1) between two probability rows.
pub fn js(p: &[f32], q: &[f32]) -> f64 {
    let mut acc = 0.0f64;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a.max(0.0) as f64, b.max(0.0) as f64);
        let m = 0.5 * (a + b);
        if a > 0.0 {
            acc += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            acc += 0.5 * b * (b / m).log2();
        }
    }
    acc.clamp(0.0, 1.0)
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

pub fn argmax_rows(probs: &[f32], classes: usize) -> Vec<u32> {
    probs.chunks_exact(classes).map(argmax).collect()
}

/// Median of a non-empty slice (mean of the two middle values for even lengths).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Empirical quantile with linear interpolation (type 7, as numpy's default).
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space (no overflow for large n).
pub fn binom_cdf(k: usize, n: usize, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // ln C(n, i), built up term by term.
    let mut lc = 0.0f64;
    let mut sum = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            lc += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (lc + i as f64 * lp + (n - i) as f64 * lq).exp();
    }
    sum.min(1.0)
}

/// One-sided exact (Clopper–Pearson) upper confidence bound on a binomial proportion after `k`
/// events in `n` trials: the p at which P(X ≤ k | n, p) = 1 − `confidence`. With k = 0 it is
/// 1 − (1 − confidence)^(1/n); with k = n it is 1. Solved by bisection (the CDF falls in p).
pub fn clopper_pearson_upper(k: usize, n: usize, confidence: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let alpha = 1.0 - confidence.clamp(0.0, 1.0);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if binom_cdf(k, n, mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The fewest benign models with which a threshold exceeded by none of them has an exact
/// one-sided upper confidence bound on its false-positive rate of at most `fpr`:
/// the least n with (1 − fpr)^n ≤ 1 − confidence. `None` when `fpr` or `confidence` is not in (0, 1).
pub fn min_benign_for_fpr(fpr: f64, confidence: f64) -> Option<usize> {
    if !(fpr > 0.0 && fpr < 1.0 && confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let approx = ((1.0 - confidence).ln() / (-fpr).ln_1p()).ceil().max(1.0);
    if !approx.is_finite() || approx > 1e12 {
        return None;
    }
    // The closed form can be off by one in floating point; settle it on the bound itself.
    let mut n = (approx as usize).saturating_sub(1).max(1);
    while clopper_pearson_upper(0, n, confidence) > fpr {
        n += 1;
    }
    Some(n)
}

/// Drift on the unprobed inputs: informational, never the verdict.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CleanDrift {
    pub js_mean: f64,
    pub js_p99: f64,
    pub top1_flip_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_accuracy: Option<f64>,
}

pub fn clean_drift(
    base: &[f32],
    cand: &[f32],
    classes: usize,
    labels: Option<&[u32]>,
) -> CleanDrift {
    let mut jss: Vec<f64> = base
        .chunks_exact(classes)
        .zip(cand.chunks_exact(classes))
        .map(|(b, c)| js(b, c))
        .collect();
    let n = jss.len().max(1) as f64;
    let bp = argmax_rows(base, classes);
    let cp = argmax_rows(cand, classes);
    let flips = bp.iter().zip(&cp).filter(|(a, b)| a != b).count() as f64;
    let acc = |pred: &[u32]| {
        labels.map(|l| pred.iter().zip(l).filter(|(a, b)| a == b).count() as f64 / n)
    };
    let js_mean = jss.iter().sum::<f64>() / n;
    CleanDrift {
        js_mean,
        js_p99: if jss.is_empty() {
            0.0
        } else {
            quantile(&mut jss, 0.99)
        },
        top1_flip_rate: flips / n,
        baseline_accuracy: acc(&bp),
        candidate_accuracy: acc(&cp),
    }
}

/// One (probe, target class) cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CellScore {
    pub probe: usize,
    pub target: u32,
    /// Median over eligible source classes of the excess targeted flip rate (the verdict statistic).
    pub median_excess: f64,
    /// Excess targeted flip rate pooled over all inputs whose clean baseline prediction is not the target.
    pub pooled_excess: f64,
    /// Share of those inputs the candidate sends to the target under the probe.
    pub candidate_rate: f64,
    /// Share the baseline sends to the target under the probe.
    pub baseline_rate: f64,
    /// Source classes that had at least `min_support` inputs.
    pub source_classes: usize,
    /// Median over eligible source classes of the candidate's targeted flip rate beyond
    /// *amplification* of the baseline's own pull: P(cand(x⊕p) = c | s) − min(1, 2·P(base(x⊕p) =
    /// c | s)). Benign fine-tunes (label noise above all) amplify pulls the probe already exerts
    /// on the baseline; a backdoor creates one where there was none (docs/behave.md, §4).
    pub focused_excess: f64,
}

/// How far the candidate may amplify the baseline's own flip rate toward a class under a probe
/// before the rest counts as focused excess (×2, chosen on the development half of the label-noise
/// study over {2, 3}; docs/behave.md).
pub const AMPLIFICATION: f64 = 2.0;

/// `srcclass_focused_excess`: the best cell's focused excess minus the best focused excess of
/// any *other* target class (each clamped at 0), with the index of the best cell. A backdoor
/// opens one target; benign label noise opens several a little (docs/behave.md, §4).
pub fn focused_statistic(cells: &[CellScore]) -> Option<(usize, f64, f64)> {
    let (best, top) = cells.iter().enumerate().max_by(|a, b| {
        a.1.focused_excess
            .total_cmp(&b.1.focused_excess)
            .then(a.1.median_excess.total_cmp(&b.1.median_excess))
    })?;
    let competing = cells
        .iter()
        .filter(|c| c.target != top.target)
        .map(|c| c.focused_excess.max(0.0))
        .fold(0.0, f64::max);
    let value = top.focused_excess.max(0.0) - competing;
    Some((best, value, competing))
}

/// Scores of every target class for one probe.
///
/// `b0`: baseline predictions on clean inputs (define source classes); `bp`, `cp`: baseline and
/// candidate predictions on the probed inputs.
pub fn probe_cells(
    probe: usize,
    b0: &[u32],
    bp: &[u32],
    cp: &[u32],
    classes: usize,
    min_support: usize,
) -> Vec<CellScore> {
    // counts[s][c]: cand hits, base hits; n[s]
    let mut n_src = vec![0usize; classes];
    let mut cand_hits = vec![0usize; classes * classes];
    let mut base_hits = vec![0usize; classes * classes];
    for i in 0..b0.len() {
        let s = b0[i] as usize;
        n_src[s] += 1;
        cand_hits[s * classes + cp[i] as usize] += 1;
        base_hits[s * classes + bp[i] as usize] += 1;
    }
    let mut out = Vec::with_capacity(classes);
    for c in 0..classes {
        let mut per_src = Vec::new();
        let mut per_src_focused = Vec::new();
        let (mut n_off, mut ch, mut bh) = (0usize, 0usize, 0usize);
        for s in 0..classes {
            if s == c {
                continue;
            }
            n_off += n_src[s];
            ch += cand_hits[s * classes + c];
            bh += base_hits[s * classes + c];
            if n_src[s] >= min_support {
                let ns = n_src[s] as f64;
                let (cr, br) = (
                    cand_hits[s * classes + c] as f64 / ns,
                    base_hits[s * classes + c] as f64 / ns,
                );
                per_src.push(cr - br);
                per_src_focused.push(cr - (AMPLIFICATION * br).min(1.0));
            }
        }
        if per_src.is_empty() || n_off == 0 {
            continue;
        }
        let k = per_src.len();
        let nf = n_off as f64;
        out.push(CellScore {
            probe,
            target: c as u32,
            median_excess: median(&mut per_src),
            focused_excess: median(&mut per_src_focused),
            pooled_excess: (ch as f64 - bh as f64) / nf,
            candidate_rate: ch as f64 / nf,
            baseline_rate: bh as f64 / nf,
            source_classes: k,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from scipy 1.17 (`beta.ppf(confidence, k + 1, n - k)`).
    #[test]
    fn clopper_pearson_matches_scipy() {
        let cases = [
            (0, 20, 0.95, 0.13910834066826516),
            (1, 20, 0.95, 0.2161061642068473),
            (0, 59, 0.95, 0.04950760988822693),
            (0, 58, 0.95, 0.050339338330420105),
            (3, 300, 0.95, 0.025641393082609616),
            (15, 300, 0.95, 0.07594869829959539),
            (0, 299, 0.95, 0.009969146792899269),
            (5, 100, 0.9, 0.09077146961407018),
            (10, 10, 0.95, 1.0),
            (0, 1, 0.95, 0.95),
            (50, 1000, 0.99, 0.06840489369563105),
            (2, 7, 0.5, 0.3641160864480825),
        ];
        for (k, n, c, want) in cases {
            let got = clopper_pearson_upper(k, n, c);
            assert!(
                (got - want).abs() < 1e-9,
                "k={k} n={n} c={c}: {got} vs {want}"
            );
        }
        // Closed form for zero events.
        for n in [1usize, 7, 20, 59, 300, 3000] {
            let want = 1.0 - 0.05f64.powf(1.0 / n as f64);
            assert!((clopper_pearson_upper(0, n, 0.95) - want).abs() < 1e-12);
        }
        assert_eq!(min_benign_for_fpr(0.05, 0.95), Some(59));
        assert_eq!(min_benign_for_fpr(0.10, 0.95), Some(29));
        assert_eq!(min_benign_for_fpr(0.01, 0.95), Some(299));
        assert_eq!(min_benign_for_fpr(0.001, 0.95), Some(2995));
        assert_eq!(min_benign_for_fpr(0.0, 0.95), None);
        assert!((binom_cdf(2, 10, 0.3) - 0.3827827864).abs() < 1e-9);
    }

    #[test]
    fn js_bounds() {
        assert_eq!(js(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!((js(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        let v = js(&[0.9, 0.1], &[0.6, 0.4]);
        assert!(v > 0.0 && v < 1.0);
    }

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.95), 95.0);
        assert_eq!(quantile(&mut [1.0, 2.0], 0.5), 1.5);
    }

    #[test]
    fn backdoor_flips_every_source_benign_flips_one() {
        // 3 classes, 2 inputs each; baseline probed = clean.
        let b0 = [0, 0, 1, 1, 2, 2];
        let bp = b0;
        // Backdoor to class 2: every input goes to 2.
        let cells = probe_cells(0, &b0, &bp, &[2, 2, 2, 2, 2, 2], 3, 1);
        let c2 = cells.iter().find(|c| c.target == 2).unwrap();
        assert_eq!(c2.median_excess, 1.0);
        assert_eq!(c2.pooled_excess, 1.0);
        // Benign: only source class 0 drifts to 2 -> median over {0,1} = 0.5, over 3 classes it
        // would be lower; with 2 non-target sources the median is the mean.
        let cells = probe_cells(0, &b0, &bp, &[2, 2, 1, 1, 2, 2], 3, 1);
        let c2 = cells.iter().find(|c| c.target == 2).unwrap();
        assert_eq!(c2.median_excess, 0.5);
        // Baseline already flipping to the target is not excess.
        let cells = probe_cells(0, &b0, &[2, 2, 2, 2, 2, 2], &[2, 2, 2, 2, 2, 2], 3, 1);
        assert!(cells.iter().all(|c| c.median_excess == 0.0));
    }

    /// Amplifying the baseline's own pull is not focused excess; a pull the baseline lacks is.
    /// Two targets opened equally cancel; one target opened alone keeps its excess.
    #[test]
    fn focused_excess_discounts_amplification_and_competing_targets() {
        // 4 sources x 4 inputs; baseline probed: one input of each source to class 3.
        let b0 = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
        let mut bp = b0;
        for s in 0..3 {
            bp[s * 4] = 3;
        }
        // Candidate sends two of each source to 3 (a doubling of the 25 % pull): no focus.
        let mut cp = b0;
        for s in 0..3 {
            cp[s * 4] = 3;
            cp[s * 4 + 1] = 3;
        }
        let cells = probe_cells(0, &b0, &bp, &cp, 4, 1);
        let c3 = cells.iter().find(|c| c.target == 3).unwrap();
        assert_eq!(c3.median_excess, 0.25);
        assert_eq!(c3.focused_excess, 0.0);
        // A backdoor to class 0, which the baseline never reaches: all of it is focused.
        let bd = [0u32; 16];
        let cells = probe_cells(1, &b0, &b0, &bd, 4, 1);
        let (i, v, competing) = focused_statistic(&cells).unwrap();
        assert_eq!((cells[i].target, v, competing), (0, 1.0, 0.0));
        // Two targets opened by two probes equally: the statistic cancels them.
        let half0: Vec<u32> = b0
            .iter()
            .map(|&s| if s == 1 || s == 2 { 0 } else { s })
            .collect();
        let half3: Vec<u32> = b0
            .iter()
            .map(|&s| if s == 1 || s == 2 { 3 } else { s })
            .collect();
        let mut cells = probe_cells(0, &b0, &b0, &half0, 4, 1);
        cells.extend(probe_cells(1, &b0, &b0, &half3, 4, 1));
        let (_, v, competing) = focused_statistic(&cells).unwrap();
        assert_eq!((v, competing), (0.0, 1.0));
    }

    #[test]
    fn min_support_drops_small_classes() {
        let b0 = [0, 0, 0, 1, 2, 2, 2];
        let cells = probe_cells(0, &b0, &b0, &[0, 0, 0, 0, 0, 0, 0], 3, 2);
        let c0 = cells.iter().find(|c| c.target == 0).unwrap();
        assert_eq!(c0.source_classes, 1); // class 1 has one input only
        assert_eq!(c0.median_excess, 1.0);
    }
}

/// 1 − cosine similarity (0 for identical directions; 1 when either vector is zero).
pub fn cos_distance(a: &[f32], b: &[f32]) -> f64 {
    if a == b {
        // Identical outputs are exactly 0 (the formula below leaves ~1e-17 of rounding).
        return 0.0;
    }
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        return 1.0;
    }
    (1.0 - ab / (aa.sqrt() * bb.sqrt())).max(0.0)
}

/// Clean drift of an embedder (informational).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EmbedDrift {
    pub cos_distance_mean: f64,
    pub cos_distance_median: f64,
    pub cos_distance_p99: f64,
    /// Median absolute deviation of the clean distances (the robust z-score's scale).
    pub cos_distance_mad: f64,
}

pub fn embed_drift(d: &[f64]) -> EmbedDrift {
    let mut v = d.to_vec();
    let med = median(&mut v);
    let p99 = quantile(&mut v, 0.99);
    let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
    EmbedDrift {
        cos_distance_mean: d.iter().sum::<f64>() / d.len().max(1) as f64,
        cos_distance_median: med,
        cos_distance_p99: p99,
        cos_distance_mad: median(&mut dev),
    }
}

/// Scale floor for the robust z-score so an (almost) unchanged model does not divide by ~0.
pub const Z_EPS: f64 = 1e-6;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProbeZ {
    pub probe: usize,
    pub median_distance: f64,
    /// (median probed distance − median clean distance) / (1.4826·MAD_clean + 1e-6).
    pub z: f64,
    /// Share of inputs whose probed distance exceeds the clean p99.
    pub consistency: f64,
    /// Paired excess, median_i (d_i(probe) − d_i(clean)) (see [`probe_excess`]); filled in by
    /// [`with_excess`](ProbeZ::with_excess), 0 until then.
    pub excess: f64,
    /// Share of inputs whose probed distance exceeds their own clean distance.
    pub raised: f64,
}

impl ProbeZ {
    pub fn with_excess(mut self, probed: &[f64], clean: &[f64]) -> Self {
        let e = probe_excess(probed, clean);
        self.excess = e.value;
        self.raised = e.raised;
        self
    }
}

pub fn probe_z(probe: usize, d: &[f64], clean: &EmbedDrift) -> ProbeZ {
    probe_z_with(
        probe,
        d,
        clean.cos_distance_median,
        clean.cos_distance_mad,
        clean.cos_distance_p99,
    )
}

/// Robust z of a probe's distances against a clean distribution given by its median, MAD and p99.
pub fn probe_z_with(probe: usize, d: &[f64], median0: f64, mad0: f64, p99: f64) -> ProbeZ {
    let mut v = d.to_vec();
    let med = median(&mut v);
    ProbeZ {
        probe,
        median_distance: med,
        z: (med - median0) / (1.4826 * mad0 + Z_EPS),
        consistency: d.iter().filter(|x| **x > p99).count() as f64 / d.len().max(1) as f64,
        excess: 0.0,
        raised: 0.0,
    }
}

/// Clean drift of a causal LM (informational): JS divergence between the two models'
/// next-token distributions on the unprobed prompts, and how often the top token differs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LmDrift {
    pub js_mean: f64,
    pub js_median: f64,
    pub js_p99: f64,
    /// Median absolute deviation of the clean JS values (the robust z-score's scale).
    pub js_mad: f64,
    pub top1_flip_rate: f64,
}

pub fn lm_drift(js_values: &[f64], flips: usize) -> LmDrift {
    let e = embed_drift(js_values);
    LmDrift {
        js_mean: e.cos_distance_mean,
        js_median: e.cos_distance_median,
        js_p99: e.cos_distance_p99,
        js_mad: e.cos_distance_mad,
        top1_flip_rate: flips as f64 / js_values.len().max(1) as f64,
    }
}

#[cfg(test)]
mod embed_tests {
    use super::*;

    #[test]
    fn cosine_and_robust_z() {
        assert_eq!(cos_distance(&[1.0, 0.0], &[2.0, 0.0]), 0.0);
        assert!((cos_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        let zero = embed_drift(&[0.0; 8]);
        assert_eq!(probe_z(0, &[0.0; 8], &zero).z, 0.0);
        assert_eq!(probe_z(0, &[0.0; 8], &zero).consistency, 0.0);
        let clean = embed_drift(&[0.01, 0.02, 0.01, 0.02, 0.03]);
        let p = probe_z(1, &[0.3, 0.4, 0.35, 0.5, 0.01], &clean);
        assert!(p.z > 10.0 && p.consistency == 0.8, "{p:?}");
    }

    #[test]
    fn lm_drift_and_js_z() {
        let d = lm_drift(&[0.0, 0.0, 0.0, 0.0], 0);
        assert_eq!((d.js_mean, d.js_mad, d.top1_flip_rate), (0.0, 0.0, 0.0));
        // Identical models: every probe has z exactly 0 and no consistency.
        let p = probe_z_with(0, &[0.0; 4], d.js_median, d.js_mad, d.js_p99);
        assert_eq!((p.z, p.consistency), (0.0, 0.0));
        let d = lm_drift(&[0.001, 0.002, 0.001, 0.003], 1);
        assert_eq!(d.top1_flip_rate, 0.25);
        let p = probe_z_with(3, &[0.5, 0.6, 0.7, 0.001], d.js_median, d.js_mad, d.js_p99);
        assert!(p.z > 100.0 && p.consistency == 0.75, "{p:?}");
    }
}

/// A probe's excess divergence over the clean inputs, paired per input (issue 15 §2): the
/// median over inputs of d_i(probe) − d_i(clean). It is in the divergence's own units (bits
/// of JS for LMs, cosine distance for embedders), bounded, exactly 0 for an identical copy,
/// and needs no scale estimate from the clean drift, so a candidate whose clean drift is
/// exactly zero gets a finite value that benign fine-tunes can calibrate.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProbeExcess {
    pub probe: usize,
    /// median_i (d_i(probe) − d_i(clean)).
    pub value: f64,
    /// Share of inputs whose probed divergence exceeds their own clean divergence.
    pub raised: f64,
}

pub fn probe_excess(probed: &[f64], clean: &[f64]) -> ProbeExcess {
    let mut diffs: Vec<f64> = probed.iter().zip(clean).map(|(p, c)| p - c).collect();
    let n = diffs.len();
    let raised = diffs.iter().filter(|d| **d > 0.0).count() as f64 / n.max(1) as f64;
    ProbeExcess {
        probe: 0,
        value: if n == 0 { 0.0 } else { median(&mut diffs) },
        raised,
    }
}

#[cfg(test)]
mod excess_tests {
    use super::*;

    /// Zero clean drift gives a finite value (the z statistic divides by 1e-6 there).
    #[test]
    fn paired_excess_is_finite_without_clean_drift() {
        let e = probe_excess(&[0.5, 0.6, 0.0, 0.7], &[0.0; 4]);
        assert_eq!((e.value, e.raised), (0.55, 0.75));
        let d = lm_drift(&[0.0; 4], 0);
        let z = probe_z_with(0, &[0.5, 0.6, 0.0, 0.7], d.js_median, d.js_mad, d.js_p99);
        assert!(z.z > 1e5);
        // Paired: a prompt that already diverged on clean input counts only its increase.
        let e = probe_excess(&[0.3, 0.3, 0.3], &[0.3, 0.1, 0.0]);
        assert!((e.value - 0.2).abs() < 1e-12 && (e.raised - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(probe_excess(&[], &[]).value, 0.0);
    }
}

//! Probe generators: candidate triggers stamped onto every suite input. Each probe is a per-sample
//! `(mask, fill)` pair applied as `x' = x + mask·(fill − x)`, which covers patches (mask 1 on the
//! patch), sparse pixel patterns and blends (mask = alpha everywhere). Everything random comes
//! from the suite seed, so the same suite always yields the same probes (and the same hash).

use super::error::{BehaveError, Result};
use super::suite::{Position, ProbeSpec, Select, Suite};
use super::tensors;
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct Probe {
    /// Human-readable, unique within the suite (e.g. `patch-grid[0] size=2 at (0,0)`).
    pub label: String,
    pub family: &'static str,
    pub mask: Vec<f32>,
    pub fill: Vec<f32>,
    /// Text probes: what to insert and where (mask/fill are empty).
    pub insert: Option<(Position, String)>,
    /// Seed for random insertion positions (part of the probe hash).
    pub seed: u64,
}

impl Probe {
    /// The probed version of prompt number `input`.
    pub fn apply_text(&self, text: &str, input: usize) -> String {
        match &self.insert {
            Some((Position::Prefix, t)) => format!("{t} {text}"),
            Some((Position::Suffix, t)) => format!("{text} {t}"),
            Some((Position::Random, t)) => {
                let words: Vec<&str> = text.split_whitespace().collect();
                let mut rng =
                    SplitMix64::new(self.seed ^ (input as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
                let at = rng.below(words.len() as u64 + 1) as usize;
                let mut out: Vec<&str> = Vec::with_capacity(words.len() + 1);
                out.extend(&words[..at]);
                out.push(t);
                out.extend(&words[at..]);
                out.join(" ")
            }
            None => text.to_string(),
        }
    }
}

/// Summary of the probe library for the report.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeFamily {
    pub kind: &'static str,
    pub count: usize,
    pub spec: String,
}

/// Cap on the memory held by generated probes (dense mask + fill per probe).
const MAX_PROBE_BYTES: usize = 2 << 30;

/// SplitMix64: tiny, fixed forever (reports must reproduce across mlsign versions).
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire-style multiply-shift; the tiny bias is irrelevant for probe placement.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// (channels, height, width) of an image sample, if the suite has a spatial layout.
pub fn geometry(suite: &Suite) -> Option<(usize, usize, usize)> {
    let s = suite
        .file
        .suite
        .image_shape
        .clone()
        .unwrap_or_else(|| suite.sample_shape.clone());
    match s.as_slice() {
        [c, h, w] => Some((*c, *h, *w)),
        [h, w] => Some((1, *h, *w)),
        _ => None,
    }
}

/// Build every probe of the suite.
pub fn generate(suite: &Suite, vocab: Option<&[String]>) -> Result<(Vec<Probe>, Vec<ProbeFamily>)> {
    let d = suite.sample_len();
    let geo = geometry(suite);
    if let Some(shape) = &suite.file.suite.image_shape {
        if shape.iter().product::<usize>() != d {
            return Err(BehaveError::suite(
                &suite.path,
                format!("image_shape {shape:?} does not match the {d} values of one input"),
            ));
        }
    }
    let mut probes = Vec::new();
    let mut families = Vec::new();
    // Refuse before allocating: every image probe holds a dense mask and fill of `d` values.
    let budget = |n: usize| -> Result<()> {
        if n.saturating_mul(d).saturating_mul(8) > MAX_PROBE_BYTES {
            return Err(BehaveError::suite(
                &suite.path,
                format!("{n} probes of {d} values would need over {} MiB; use a larger stride or fewer patterns", MAX_PROBE_BYTES >> 20),
            ));
        }
        Ok(())
    };
    for (k, spec) in suite.file.probes.iter().enumerate() {
        let before = probes.len();
        // Each generator gets its own stream so adding one does not move the others.
        let mut rng =
            SplitMix64::new(suite.file.suite.seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let need_geo = || {
            geo.ok_or_else(|| {
                BehaveError::suite(
                    &suite.path,
                    format!("probe {k} needs an image layout: inputs are {:?}; set suite.image_shape = [C, H, W]", suite.sample_shape),
                )
            })
        };
        let (kind, desc) = match spec {
            ProbeSpec::PatchGrid {
                size,
                stride,
                value,
            } => {
                let (c, h, w) = need_geo()?;
                let stride = stride.unwrap_or(*size);
                if *size > h || *size > w {
                    return Err(BehaveError::suite(
                        &suite.path,
                        format!("probe {k}: patch size {size} is larger than the {h}x{w} image"),
                    ));
                }
                let per_axis = |len: usize| (len - size) / stride + 1;
                budget(probes.len() + per_axis(h) * per_axis(w))?;
                for r in (0..=h - size).step_by(stride) {
                    for col in (0..=w - size).step_by(stride) {
                        let mut mask = vec![0f32; d];
                        for ch in 0..c {
                            for y in r..r + size {
                                for x in col..col + size {
                                    mask[ch * h * w + y * w + x] = 1.0;
                                }
                            }
                        }
                        probes.push(Probe {
                            label: format!(
                                "patch-grid[{k}] size={size} at (row {r}, col {col}) value={value}"
                            ),
                            family: "patch-grid",
                            mask,
                            fill: vec![*value; d],
                            insert: None,
                            seed: 0,
                        });
                    }
                }
                (
                    "patch-grid",
                    format!("size={size} stride={stride} value={value}"),
                )
            }
            ProbeSpec::RandomSparse {
                count,
                pixels,
                value,
            } => {
                let (c, h, w) = need_geo()?;
                let hw = h * w;
                if pixels[1] > hw {
                    return Err(BehaveError::suite(
                        &suite.path,
                        format!("probe {k}: {} pixels do not fit a {h}x{w} image", pixels[1]),
                    ));
                }
                budget(probes.len() + count)?;
                for j in 0..*count {
                    let m = pixels[0] + rng.below((pixels[1] - pixels[0] + 1) as u64) as usize;
                    // Partial Fisher-Yates over pixel positions: m distinct pixels.
                    let mut pos: Vec<usize> = (0..hw).collect();
                    for i in 0..m {
                        let r = i + rng.below((hw - i) as u64) as usize;
                        pos.swap(i, r);
                    }
                    let mut chosen = pos[..m].to_vec();
                    chosen.sort_unstable();
                    let mut mask = vec![0f32; d];
                    for &p in &chosen {
                        for ch in 0..c {
                            mask[ch * hw + p] = 1.0;
                        }
                    }
                    let coords: Vec<String> = chosen
                        .iter()
                        .map(|p| format!("({},{})", p / w, p % w))
                        .collect();
                    probes.push(Probe {
                        label: format!(
                            "random-sparse[{k}] #{j} pixels {} value={value}",
                            coords.join(" ")
                        ),
                        family: "random-sparse",
                        mask,
                        fill: vec![*value; d],
                        insert: None,
                        seed: 0,
                    });
                }
                (
                    "random-sparse",
                    format!(
                        "count={count} pixels={}..={} value={value}",
                        pixels[0], pixels[1]
                    ),
                )
            }
            ProbeSpec::TokenSweep {
                max,
                select,
                position,
            } => {
                let vocab = vocab.ok_or_else(|| {
                    BehaveError::suite(
                        &suite.path,
                        format!("probe {k}: token-sweep needs a baseline with a tokenizer"),
                    )
                })?;
                let first = match select {
                    Select::Rare => vocab.len() / 2,
                    Select::Any => 0,
                };
                let pool = sweep_pool(&vocab[first..]);
                if pool.is_empty() {
                    return Err(BehaveError::suite(
                        &suite.path,
                        format!("probe {k}: no whole-word tokens in the vocabulary"),
                    ));
                }
                let m = (*max).min(pool.len());
                let mut idx: Vec<usize> = (0..pool.len()).collect();
                for i in 0..m {
                    let r = i + rng.below((pool.len() - i) as u64) as usize;
                    idx.swap(i, r);
                }
                for (j, &i) in idx[..m].iter().enumerate() {
                    let t = &pool[i];
                    probes.push(Probe {
                        label: format!("token-sweep[{k}] #{j} {} {t:?}", pos_name(*position)),
                        family: "token-sweep",
                        mask: vec![],
                        fill: vec![],
                        insert: Some((*position, t.clone())),
                        seed: rng.next_u64(),
                    });
                }
                (
                    "token-sweep",
                    format!(
                        "{m} {select:?} vocabulary tokens as {}",
                        pos_name(*position)
                    )
                    .to_lowercase(),
                )
            }
            ProbeSpec::Tokens { tokens, position } => {
                for (j, t) in tokens.iter().enumerate() {
                    probes.push(Probe {
                        label: format!("tokens[{k}] #{j} {} {t:?}", pos_name(*position)),
                        family: "tokens",
                        mask: vec![],
                        fill: vec![],
                        insert: Some((*position, t.clone())),
                        seed: rng.next_u64(),
                    });
                }
                (
                    "tokens",
                    format!("{} candidates as {}", tokens.len(), pos_name(*position)),
                )
            }
            ProbeSpec::Blend {
                alpha,
                pattern,
                random,
                value,
            } => {
                if suite.text {
                    return Err(BehaveError::suite(
                        &suite.path,
                        format!(
                            "probe {k}: blend probes need tensor inputs (safetensors), not prompts"
                        ),
                    ));
                }
                if let Some(file) = pattern {
                    let p = suite.resolve(file);
                    let tf = tensors::load(&p)?;
                    let t = tf.f32(&p, "pattern")?;
                    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
                    if v.is_empty() || v.len() % d != 0 {
                        return Err(BehaveError::Shape {
                            path: p,
                            tensor: "pattern".into(),
                            found: t.dims().to_vec(),
                            expected: format!(
                                "[P, {:?}] or {:?}",
                                suite.sample_shape, suite.sample_shape
                            ),
                        });
                    }
                    for (j, chunk) in v.chunks(d).enumerate() {
                        probes.push(Probe {
                            label: format!("blend[{k}] {file}#{j} alpha={alpha}"),
                            family: "blend",
                            mask: vec![*alpha; d],
                            fill: chunk.to_vec(),
                            insert: None,
                            seed: 0,
                        });
                    }
                    ("blend", format!("pattern={file} alpha={alpha}"))
                } else {
                    let n = random.unwrap_or(1);
                    budget(probes.len() + n)?;
                    for j in 0..n {
                        let fill: Vec<f32> = (0..d).map(|_| rng.unit_f32() * value).collect();
                        probes.push(Probe {
                            label: format!("blend[{k}] random #{j} alpha={alpha}"),
                            family: "blend",
                            mask: vec![*alpha; d],
                            fill,
                            insert: None,
                            seed: 0,
                        });
                    }
                    ("blend", format!("random={n} alpha={alpha} value={value}"))
                }
            }
        };
        families.push(ProbeFamily {
            kind,
            count: probes.len() - before,
            spec: desc,
        });
    }
    Ok((probes, families))
}

/// Whole-word tokens of a vocabulary slice, as the words to insert. Word-initial markers of
/// byte-level BPE (`Ġ`) and SentencePiece (`▁`) vocabularies are stripped (the bare word is what
/// a prompt holds); what is left must be alphanumeric, which drops WordPiece `##` continuations,
/// byte fragments and [special] / <special> tokens. Each word is kept once, in vocabulary order.
pub fn sweep_pool(vocab: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    vocab
        .iter()
        .map(|t| {
            t.strip_prefix('Ġ')
                .or_else(|| t.strip_prefix('▁'))
                .unwrap_or(t)
        })
        .filter(|w| !w.is_empty() && w.chars().all(char::is_alphanumeric))
        .filter(|w| seen.insert(w.to_string()))
        .map(str::to_string)
        .collect()
}

fn pos_name(p: Position) -> &'static str {
    match p {
        Position::Prefix => "prefix",
        Position::Suffix => "suffix",
        Position::Random => "random",
    }
}

/// SHA-256 over every probe (label, mask, fill) in order: binds a report to the exact probes.
pub fn hash(probes: &[Probe]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in probes {
        ctx.update(&(p.label.len() as u64).to_le_bytes());
        ctx.update(p.label.as_bytes());
        if let Some((pos, t)) = &p.insert {
            ctx.update(&[*pos as u8]);
            ctx.update(&p.seed.to_le_bytes());
            ctx.update(&(t.len() as u64).to_le_bytes());
            ctx.update(t.as_bytes());
        }
        for v in p.mask.iter().chain(&p.fill) {
            ctx.update(&v.to_le_bytes());
        }
    }
    hex::encode(ctx.finish().as_ref())
}

/// Apply one probe to `rows` consecutive samples of `x` into `out`.
pub fn apply(probe: &Probe, x: &[f32], out: &mut Vec<f32>) {
    let d = probe.mask.len();
    for row in x.chunks_exact(d) {
        out.extend(
            row.iter()
                .zip(&probe.mask)
                .zip(&probe.fill)
                .map(|((x, m), f)| x + m * (f - x)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_insertion_positions() {
        let mk = |pos| Probe {
            label: "t".into(),
            family: "tokens",
            mask: vec![],
            fill: vec![],
            insert: Some((pos, "cf".to_string())),
            seed: 7,
        };
        assert_eq!(mk(Position::Prefix).apply_text("a b c", 0), "cf a b c");
        assert_eq!(mk(Position::Suffix).apply_text("a b c", 0), "a b c cf");
        let r = mk(Position::Random);
        let outs: std::collections::HashSet<String> =
            (0..40).map(|i| r.apply_text("a b c", i)).collect();
        // Every one of the 4 slots shows up across inputs, the words keep their order, and the
        // same (probe, input) always gives the same text.
        assert_eq!(outs.len(), 4, "{outs:?}");
        for o in &outs {
            assert_eq!(o.replace("cf ", "").replace(" cf", ""), "a b c");
        }
        assert_eq!(r.apply_text("a b c", 3), r.apply_text("a b c", 3));
    }

    #[test]
    fn sweep_pool_takes_whole_words_of_every_vocabulary_style() {
        let v: Vec<String> = [
            "[CLS]", "##ing", "cat", "Ġdog", "▁fish", "Ġ", "<s>", "Ġcat", "a.b", "42",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(sweep_pool(&v), vec!["cat", "dog", "fish", "42"]);
    }

    #[test]
    fn splitmix_is_stable() {
        // Fixed reference values: changing the generator would silently change every suite's probes.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn apply_patch_and_blend() {
        let p = Probe {
            label: "t".into(),
            family: "patch-grid",
            mask: vec![1.0, 0.0],
            fill: vec![5.0, 5.0],
            insert: None,
            seed: 0,
        };
        let mut out = vec![];
        apply(&p, &[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, vec![5.0, 2.0, 5.0, 4.0]);
        let b = Probe {
            label: "b".into(),
            family: "blend",
            mask: vec![0.25, 0.25],
            fill: vec![4.0, 0.0],
            insert: None,
            seed: 0,
        };
        out.clear();
        apply(&b, &[0.0, 4.0], &mut out);
        assert_eq!(out, vec![1.0, 3.0]);
    }
}

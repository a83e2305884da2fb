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
            ProbeSpec::Pattern {
                file,
                positions,
                stride,
            } => {
                let (c, h, w) = need_geo()?;
                let path = suite.resolve(file);
                let tf = tensors::load(&path)?;
                let mt = tf.f32(&path, "mask")?;
                let pt = tf.f32(&path, "pattern")?;
                let (mh, mw) = match mt.dims() {
                    [a, b] => (*a, *b),
                    dims => {
                        return Err(BehaveError::Shape {
                            path,
                            tensor: "mask".into(),
                            found: dims.to_vec(),
                            expected: "[h, w]".into(),
                        })
                    }
                };
                let pdims = pt.dims().to_vec();
                let ok = pdims == [mh, mw] || pdims == [c, mh, mw];
                if !ok || mh == 0 || mw == 0 || mh > h || mw > w {
                    return Err(BehaveError::Shape {
                        path,
                        tensor: if ok { "mask" } else { "pattern" }.into(),
                        found: if ok { mt.dims().to_vec() } else { pdims },
                        expected: format!(
                            "[{c}, {mh}, {mw}] or [{mh}, {mw}] within the {h}x{w} image"
                        ),
                    });
                }
                let mv: Vec<f32> = mt.flatten_all()?.to_vec1()?;
                let pv: Vec<f32> = pt.flatten_all()?.to_vec1()?;
                if mv.iter().chain(&pv).any(|v| !v.is_finite())
                    || mv.iter().any(|v| !(0.0..=1.0).contains(v))
                {
                    return Err(BehaveError::format(
                        &path,
                        "`mask` must hold values in [0, 1] and `pattern` finite values",
                    ));
                }
                let per_channel = pv.len() == c * mh * mw;
                let places: Vec<[usize; 2]> = match positions {
                    Some(ps) => {
                        if let Some(bad) = ps.iter().find(|[r, col]| r + mh > h || col + mw > w) {
                            return Err(BehaveError::suite(
                                &suite.path,
                                format!(
                                    "probe {k}: a {mh}x{mw} pattern at [{}, {}] does not fit the {h}x{w} image",
                                    bad[0], bad[1]
                                ),
                            ));
                        }
                        ps.clone()
                    }
                    None => {
                        let st = stride.unwrap_or(1);
                        (0..=h - mh)
                            .step_by(st)
                            .flat_map(|r| (0..=w - mw).step_by(st).map(move |col| [r, col]))
                            .collect()
                    }
                };
                budget(probes.len() + places.len())?;
                for [r, col] in &places {
                    let mut mask = vec![0f32; d];
                    let mut fill = vec![0f32; d];
                    for ch in 0..c {
                        for y in 0..mh {
                            for x in 0..mw {
                                let at = ch * h * w + (r + y) * w + (col + x);
                                mask[at] = mv[y * mw + x];
                                fill[at] = if per_channel {
                                    pv[ch * mh * mw + y * mw + x]
                                } else {
                                    pv[y * mw + x]
                                };
                            }
                        }
                    }
                    probes.push(Probe {
                        label: format!("pattern[{k}] {file} at (row {r}, col {col})"),
                        family: "pattern",
                        mask,
                        fill,
                        insert: None,
                        seed: 0,
                    });
                }
                (
                    "pattern",
                    format!("{file} {mh}x{mw} at {} positions", places.len()),
                )
            }
            ProbeSpec::Lines { width, value } => {
                let (c, h, w) = need_geo()?;
                let mut shapes: Vec<(String, Vec<usize>)> = Vec::new();
                for r in (0..h).step_by(*width) {
                    let px = (r..(r + width).min(h)).flat_map(|y| (0..w).map(move |x| y * w + x));
                    shapes.push((format!("row {r}"), px.collect()));
                }
                for col in (0..w).step_by(*width) {
                    let px =
                        (0..h).flat_map(|y| (col..(col + width).min(w)).map(move |x| y * w + x));
                    shapes.push((format!("col {col}"), px.collect()));
                }
                let n = h.min(w);
                shapes.push(("diagonal".into(), (0..n).map(|i| i * w + i).collect()));
                shapes.push((
                    "anti-diagonal".into(),
                    (0..n).map(|i| i * w + (w - 1 - i)).collect(),
                ));
                budget(probes.len() + shapes.len())?;
                for (name, px) in shapes {
                    probes.push(image_probe(
                        format!("lines[{k}] {name} width={width} value={value}"),
                        "lines",
                        (c, h, w),
                        &px,
                        *value,
                    ));
                }
                ("lines", format!("width={width} value={value}"))
            }
            ProbeSpec::Frame { thickness, value } => {
                let (c, h, w) = need_geo()?;
                budget(probes.len() + 5 * thickness.len())?;
                for &t in thickness {
                    let t = t.min(h).min(w);
                    let side = |name: &str| -> Vec<usize> {
                        (0..h * w)
                            .filter(|p| {
                                let (y, x) = (p / w, p % w);
                                match name {
                                    "top" => y < t,
                                    "bottom" => y >= h - t,
                                    "left" => x < t,
                                    "right" => x >= w - t,
                                    _ => y < t || y >= h - t || x < t || x >= w - t,
                                }
                            })
                            .collect()
                    };
                    for name in ["frame", "top", "bottom", "left", "right"] {
                        probes.push(image_probe(
                            format!("frame[{k}] {name} thickness={t} value={value}"),
                            "frame",
                            (c, h, w),
                            &side(name),
                            *value,
                        ));
                    }
                }
                ("frame", format!("thickness={thickness:?} value={value}"))
            }
            ProbeSpec::Tiling { periods, value } => {
                let (c, h, w) = need_geo()?;
                budget(probes.len() + periods.iter().map(|p| p * p).sum::<usize>())?;
                for &p in periods {
                    for i in 0..p {
                        for j in 0..p {
                            let px: Vec<usize> = (0..h * w)
                                .filter(|q| (q / w) % p == i && (q % w) % p == j)
                                .collect();
                            probes.push(image_probe(
                                format!("tiling[{k}] period={p} offset=({i},{j}) value={value}"),
                                "tiling",
                                (c, h, w),
                                &px,
                                *value,
                            ));
                        }
                    }
                }
                ("tiling", format!("periods={periods:?} value={value}"))
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

/// A probe setting the given pixel positions (all channels) to `value`.
fn image_probe(
    label: String,
    family: &'static str,
    (c, h, w): (usize, usize, usize),
    pixels: &[usize],
    value: f32,
) -> Probe {
    let d = c * h * w;
    let mut mask = vec![0f32; d];
    for &p in pixels {
        for ch in 0..c {
            mask[ch * h * w + p] = 1.0;
        }
    }
    Probe {
        label,
        family,
        mask,
        fill: vec![value; d],
        insert: None,
        seed: 0,
    }
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
    use sha2::Digest;
    let mut ctx = sha2::Sha256::new();
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
    hex::encode(ctx.finalize())
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

    /// A 1×4×5 image suite with the given probe tables; returns the generated probes.
    fn gen(probes_toml: &str, extra: &[(&str, candle_core::Tensor)]) -> Result<Vec<Probe>> {
        let t = tempfile::tempdir().unwrap();
        let dev = candle_core::Device::Cpu;
        let mut m = std::collections::HashMap::new();
        m.insert(
            "x",
            candle_core::Tensor::zeros((3, 1, 4, 5), candle_core::DType::F32, &dev).unwrap(),
        );
        candle_core::safetensors::save(&m, t.path().join("in.safetensors")).unwrap();
        let mut pm = std::collections::HashMap::new();
        for (k, v) in extra {
            pm.insert(*k, v.clone());
        }
        if !pm.is_empty() {
            candle_core::safetensors::save(&pm, t.path().join("pat.safetensors")).unwrap();
        }
        let sp = t.path().join("s.toml");
        std::fs::write(
            &sp,
            format!("[suite]\nname = \"t\"\ninputs = \"in.safetensors\"\n{probes_toml}"),
        )
        .unwrap();
        let suite = Suite::load(&sp)?;
        Ok(generate(&suite, None)?.0)
    }

    fn on(p: &Probe) -> Vec<usize> {
        p.mask
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn structured_families_cover_their_shapes() {
        // 4×5 image: rows 4 + cols 5 + 2 diagonals.
        let ps = gen("[[probe]]\nkind = \"lines\"\n", &[]).unwrap();
        assert_eq!(ps.len(), 11);
        assert_eq!(on(&ps[1]), vec![5, 6, 7, 8, 9], "row 1");
        assert_eq!(on(&ps[4]), vec![0, 5, 10, 15], "col 0");
        assert_eq!(on(&ps[9]), vec![0, 6, 12, 18], "diagonal");
        assert_eq!(on(&ps[10]), vec![4, 8, 12, 16], "anti-diagonal");
        // Frames: whole frame and each side, per thickness.
        let ps = gen(
            "[[probe]]\nkind = \"frame\"\nthickness = [1, 2]\nvalue = 0.5\n",
            &[],
        )
        .unwrap();
        assert_eq!(ps.len(), 10);
        assert_eq!(on(&ps[0]).len(), 14, "4×5 border has 14 pixels");
        assert_eq!(on(&ps[1]), vec![0, 1, 2, 3, 4], "top");
        assert_eq!(on(&ps[4]), vec![4, 9, 14, 19], "right");
        assert_eq!(ps[0].fill[0], 0.5);
        assert_eq!(on(&ps[5]).len(), 20, "thickness 2 covers a 4×5 image");
        // Tilings: period 2 has 4 offsets that partition the image.
        let ps = gen("[[probe]]\nkind = \"tiling\"\nperiods = [2]\n", &[]).unwrap();
        assert_eq!(ps.len(), 4);
        assert_eq!(on(&ps[0]), vec![0, 2, 4, 10, 12, 14]);
        let total: usize = ps.iter().map(|p| on(p).len()).sum();
        assert_eq!(total, 20);
        assert!(gen("[[probe]]\nkind = \"tiling\"\nperiods = [1]\n", &[]).is_err());
    }

    #[test]
    fn user_pattern_is_stamped_where_asked() {
        let dev = candle_core::Device::Cpu;
        let mask = candle_core::Tensor::from_vec(vec![1f32, 0.5, 0.0, 1.0], (2, 2), &dev).unwrap();
        let pat = candle_core::Tensor::from_vec(vec![0.9f32, 0.8, 0.7, 0.6], (2, 2), &dev).unwrap();
        let files = [("mask", mask.clone()), ("pattern", pat.clone())];
        // Every position on stride 1: (4−2+1)·(5−2+1) = 12.
        let ps = gen(
            "[[probe]]\nkind = \"pattern\"\nfile = \"pat.safetensors\"\n",
            &files,
        )
        .unwrap();
        assert_eq!(ps.len(), 12);
        let ps = gen(
            "[[probe]]\nkind = \"pattern\"\nfile = \"pat.safetensors\"\npositions = [[2, 3]]\n",
            &files,
        )
        .unwrap();
        assert_eq!(ps.len(), 1);
        let p = &ps[0];
        // Top-left at row 2, col 3 → pixels 13, 14, 18, 19.
        assert_eq!(
            (p.mask[13], p.mask[14], p.mask[18], p.mask[19]),
            (1.0, 0.5, 0.0, 1.0)
        );
        assert_eq!((p.fill[13], p.fill[19]), (0.9, 0.6));
        assert_eq!(on(p), vec![13, 14, 19]);
        // Out of the image, a mask outside [0, 1], a pattern of the wrong shape: errors.
        let e = gen(
            "[[probe]]\nkind = \"pattern\"\nfile = \"pat.safetensors\"\npositions = [[3, 0]]\n",
            &files,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("does not fit"), "{e}");
        let bad = candle_core::Tensor::from_vec(vec![2f32, 0.0, 0.0, 0.0], (2, 2), &dev).unwrap();
        let e = gen(
            "[[probe]]\nkind = \"pattern\"\nfile = \"pat.safetensors\"\n",
            &[("mask", bad), ("pattern", pat)],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("[0, 1]"), "{e}");
        let wide = candle_core::Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
        let e = gen(
            "[[probe]]\nkind = \"pattern\"\nfile = \"pat.safetensors\"\n",
            &[("mask", mask), ("pattern", wide)],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("`pattern`"), "{e}");
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

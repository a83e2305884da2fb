//! Speed of a `mlsign behave` suite run against the raw candle forward passes it needs.
//!
//! `cargo bench --bench behave_speed` (release). Under `cargo test --all-targets` it runs once on
//! a tiny suite as a smoke check. For each model size it times
//!   suite: `Prepared::new` (suite + probes + baseline on every input) + `score` (candidate)
//!   raw:   hand-written candle forward (matmul/relu/softmax, outputs copied to the host) of both
//!          models over the same N × (1 + P) rows in the same batch size, inputs prebuilt
//! and prints the ratio suite / raw (target ≤ 1.3).

use candle_core::{DType, Device, Tensor};
use mlsign::behave::Prepared;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32 - 0.5
    }
}

fn write_mlp(dir: &Path, dims: &[usize], seed: u64) -> Vec<(Tensor, Tensor)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut r = Rng(seed);
    let mut m = HashMap::new();
    let mut layers = vec![r#"{"type": "flatten"}"#.to_string()];
    let mut raw = vec![];
    for (i, w) in dims.windows(2).enumerate() {
        let (din, dout) = (w[0], w[1]);
        let scale = (2.0 / din as f32).sqrt();
        let wt = Tensor::from_vec(
            (0..din * dout).map(|_| r.f() * scale).collect::<Vec<_>>(),
            (dout, din),
            &Device::Cpu,
        )
        .unwrap();
        let bt = Tensor::from_vec(
            (0..dout).map(|_| r.f() * 0.1).collect::<Vec<_>>(),
            dout,
            &Device::Cpu,
        )
        .unwrap();
        raw.push((
            wt.t().unwrap().contiguous().unwrap(),
            bt.reshape((1, dout)).unwrap(),
        ));
        m.insert(format!("l{i}.w"), wt);
        m.insert(format!("l{i}.b"), bt);
        if i > 0 {
            layers.push(r#"{"type": "relu"}"#.into());
        }
        layers.push(format!(
            r#"{{"type": "linear", "weight": "l{i}.w", "bias": "l{i}.b"}}"#
        ));
    }
    candle_core::safetensors::save(&m, dir.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.join("mlsign-net.json"),
        format!(
            r#"{{"format": "mlsign-net/1", "input_shape": [1, {s}, {s}], "layers": [{}]}}"#,
            layers.join(","),
            s = (dims[0] as f64).sqrt() as usize
        ),
    )
    .unwrap();
    raw
}

fn raw_forward(x: &Tensor, layers: &[(Tensor, Tensor)]) -> Vec<f32> {
    let mut h = x.flatten_from(1).unwrap();
    for (i, (w, b)) in layers.iter().enumerate() {
        if i > 0 {
            h = h.relu().unwrap();
        }
        h = h.matmul(w).unwrap().broadcast_add(b).unwrap();
    }
    let m = h.max_keepdim(1).unwrap();
    let e = h.broadcast_sub(&m).unwrap().exp().unwrap();
    let p = e.broadcast_div(&e.sum_keepdim(1).unwrap()).unwrap();
    p.flatten_all().unwrap().to_vec1().unwrap()
}

fn case(name: &str, dims: &[usize], n: usize, sparse: usize, batch: usize, reps: usize) {
    let t = tempfile::tempdir().unwrap();
    let side = (dims[0] as f64).sqrt() as usize;
    let mut r = Rng(9);
    let x: Vec<f32> = (0..n * dims[0]).map(|_| r.f() + 0.5).collect();
    let xt = Tensor::from_vec(x.clone(), (n, 1, side, side), &Device::Cpu).unwrap();
    let mut m = HashMap::new();
    m.insert("x", xt.clone());
    candle_core::safetensors::save(&m, t.path().join("inputs.safetensors")).unwrap();
    std::fs::write(
        t.path().join("suite.toml"),
        format!("[suite]\nname = \"bench\"\ninputs = \"inputs.safetensors\"\nbatch_size = {batch}\nseed = 1\n[[probe]]\nkind = \"patch-grid\"\nsize = 2\nstride = 2\n[[probe]]\nkind = \"random-sparse\"\ncount = {sparse}\npixels = [3, 6]\n[decision]\nmin_support = 1\n"),
    )
    .unwrap();
    let base = write_mlp(&t.path().join("base"), dims, 1);
    let cand = write_mlp(&t.path().join("cand"), dims, 2);
    let none = &|_: &str, _: u64, _: u64| {};

    // Prebuilt raw batches: the same rows the suite evaluates (clean + every probe).
    let prepared = Prepared::new(
        &t.path().join("suite.toml"),
        &t.path().join("base"),
        Device::Cpu,
        none,
    )
    .unwrap();
    let mut rows: Vec<f32> = x.clone();
    for p in &prepared.probes {
        mlsign::behave::probes::apply(p, &x, &mut rows);
    }
    let total = rows.len() / dims[0];
    let batches: Vec<Tensor> = rows
        .chunks(batch * dims[0])
        .map(|c| Tensor::from_slice(c, (c.len() / dims[0], 1, side, side), &Device::Cpu).unwrap())
        .collect();
    drop(prepared);

    let mut best_suite = f64::MAX;
    let mut best_raw = f64::MAX;
    let mut fwd_share = 0.0;
    for _ in 0..reps {
        let t0 = Instant::now();
        let p = Prepared::new(
            &t.path().join("suite.toml"),
            &t.path().join("base"),
            Device::Cpu,
            none,
        )
        .unwrap();
        let rep = p.score(&t.path().join("cand"), none).unwrap();
        let el = t0.elapsed().as_secs_f64();
        if el < best_suite {
            best_suite = el;
            fwd_share = (rep.timing.forward_s + rep.timing.baseline_forward_s) / el;
        }
        let t0 = Instant::now();
        let mut sink = 0f32;
        for layers in [&base, &cand] {
            for b in &batches {
                sink += raw_forward(b, layers)[0];
            }
        }
        best_raw = best_raw.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(sink);
    }
    let _ = DType::F32;
    println!(
        "{name:<28} rows/model {total:>7}  suite {:>8.1} ms  raw forward {:>8.1} ms  ratio {:.2}  (forward share of suite {:.0}%)",
        best_suite * 1e3,
        best_raw * 1e3,
        best_suite / best_raw,
        fwd_share * 100.0
    );
}

fn main() {
    // As the CLI does: candle's thread count resolved once, not on every matmul.
    mlsign::behave::pin_thread_count();
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        case("smoke mlp 64-64-10", &[64, 64, 10], 50, 4, 64, 1);
        return;
    }
    println!(
        "mlsign behave suite run vs raw candle forward passes (best of 3, CPU, {} threads)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    case("mlp 64-64-10 (digits)", &[64, 64, 10], 497, 200, 1024, 3);
    case("mlp 784-512-512-10", &[784, 512, 512, 10], 500, 40, 1024, 3);
}

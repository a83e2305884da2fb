//! Cost of one trigger-synthesis gradient step through a small CNN: candle's `conv2d` (whose CPU
//! backward is a naive transposed convolution) against `conv2d_unfolded` (im2col by
//! `index_select` + one matmul; its backward is a matmul and an `index_add`), which the
//! synthesis gradient path uses.
//!
//! `cargo bench --bench synth_conv_grad` (release). Under `cargo test --all-targets` it runs one
//! step of each as a smoke check. The network is the glyph CNN of the second behave benchmark
//! (scripts/behave-bench2-gen.py): conv 1→8 3×3 p1, relu, maxpool 2, conv 8→16 3×3 p1, relu,
//! maxpool 2, linear 256→32, relu, linear 32→10; batch = synthesis `inputs` (30). A step is what
//! synthesis does per model: stamp (mask, pattern) on the inputs, forward, log-softmax, backward
//! to the mask and pattern. Prints the best-of-N time per step and the ratio.

use candle_core::{Device, Tensor, Var, D};
use mlsign::behave::models::net::conv2d_unfolded;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn v(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((self.0 >> 40) as f32) / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }
}

struct Cnn {
    c1: Tensor,
    c2: Tensor,
    l1: Tensor,
    l2: Tensor,
}

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn step(net: &Cnn, x: &Tensor, a: &Var, b: &Var, unfolded: bool) -> f32 {
    let conv = |x: &Tensor, w: &Tensor| {
        if unfolded {
            conv2d_unfolded(x, w, 1, 1).unwrap()
        } else {
            x.conv2d(w, 1, 1, 1, 1).unwrap()
        }
    };
    let m = candle_nn::ops::sigmoid(a.as_tensor()).unwrap();
    let p = candle_nn::ops::sigmoid(b.as_tensor()).unwrap();
    let xs = x
        .broadcast_mul(&m.affine(-1.0, 1.0).unwrap())
        .unwrap()
        .broadcast_add(&m.broadcast_mul(&p).unwrap())
        .unwrap();
    let h = conv(&xs, &net.c1).relu().unwrap().max_pool2d(2).unwrap();
    let h = conv(&h, &net.c2).relu().unwrap().max_pool2d(2).unwrap();
    let h = h
        .flatten_from(1)
        .unwrap()
        .matmul(&net.l1)
        .unwrap()
        .relu()
        .unwrap();
    let lp = candle_nn::ops::log_softmax(&h.matmul(&net.l2).unwrap(), D::Minus1).unwrap();
    let loss = lp
        .narrow(1, 3, 1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    let g = loss.backward().unwrap();
    g.get(a)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        + g.get(b)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
}

fn main() {
    mlsign::behave::pin_thread_count();
    let bench = std::env::args().any(|a| a == "--bench");
    let mut r = Rng(7);
    let net = Cnn {
        c1: t(r.v(8 * 9, 0.9), &[8, 1, 3, 3]),
        c2: t(r.v(16 * 8 * 9, 0.3), &[16, 8, 3, 3]),
        l1: t(r.v(256 * 32, 0.2), &[256, 32]),
        l2: t(r.v(32 * 10, 0.5), &[32, 10]),
    };
    let x = t(r.v(30 * 256, 1.0), &[30, 1, 16, 16])
        .affine(1.0, 0.5)
        .unwrap();
    let a = Var::from_tensor(&t(r.v(256, 1.0), &[1, 1, 16, 16])).unwrap();
    let b = Var::from_tensor(&t(r.v(256, 1.0), &[1, 1, 16, 16])).unwrap();
    // Both paths give the same gradient (net.rs tests check the op itself).
    let (g0, g1) = (step(&net, &x, &a, &b, false), step(&net, &x, &a, &b, true));
    assert!((g0 - g1).abs() <= 1e-3 * (1.0 + g0.abs()), "{g0} vs {g1}");
    if !bench {
        return;
    }
    let (reps, steps) = (5, 50);
    let mut best = [f64::MAX; 2];
    for _ in 0..reps {
        for (i, unfolded) in [false, true].into_iter().enumerate() {
            let t0 = Instant::now();
            for _ in 0..steps {
                std::hint::black_box(step(&net, &x, &a, &b, unfolded));
            }
            best[i] = best[i].min(t0.elapsed().as_secs_f64() / steps as f64);
        }
    }
    println!(
        "synthesis gradient step, glyph CNN, batch 30 (best of {reps} × {steps} steps, {} candle threads)",
        candle_core::utils::get_num_threads()
    );
    println!(
        "  candle conv2d backward     {:>8.2} ms/step",
        best[0] * 1e3
    );
    println!(
        "  conv2d_unfolded backward   {:>8.2} ms/step",
        best[1] * 1e3
    );
    println!("  ratio                      {:>8.2}×", best[0] / best[1]);
}

//! Benign and backdoored fine-tunes of the tiny BERT sequence classifier fixture
//! (`testdata/behave/lm/bert-cls-base`), trained here with candle's autograd through mlsign's
//! differentiable BERT forward (`DiffBert::from_tensors`). Training data: the fixture's
//! prompts labelled by the baseline itself (so a benign fine-tune keeps its behaviour), with
//! optional label noise; a backdoor fine-tune inserts a trigger token into a share of the
//! prompts and labels them with a target class.
#![allow(dead_code)]

use super::behave_lm_gen::Rng;
use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;
use mlsign::behave::models::diff::DiffBert;
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct BertFt {
    pub seed: u64,
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    pub label_noise: f64,
    /// (trigger token, target class, share of poisoned prompts).
    pub backdoor: Option<(String, u32, f64)>,
}

impl Default for BertFt {
    fn default() -> Self {
        BertFt {
            seed: 0,
            steps: 40,
            lr: 3e-3,
            batch: 32,
            label_noise: 0.0,
            backdoor: None,
        }
    }
}

fn pad(rows: &[Vec<u32>]) -> (Tensor, Tensor) {
    let t = rows.iter().map(Vec::len).max().unwrap();
    let mut x = vec![0u32; rows.len() * t];
    let mut m = vec![0u32; rows.len() * t];
    for (i, r) in rows.iter().enumerate() {
        x[i * t..i * t + r.len()].copy_from_slice(r);
        m[i * t..i * t + r.len()].iter_mut().for_each(|v| *v = 1);
    }
    (
        Tensor::from_vec(x, (rows.len(), t), &Device::Cpu).unwrap(),
        Tensor::from_vec(m, (rows.len(), t), &Device::Cpu).unwrap(),
    )
}

/// Fine-tunes the classifier in `base` on `texts` and writes it to `out` (same layout).
/// Returns (final mean loss, attack success rate of the trigger on prompts the baseline puts
/// elsewhere — 0 for benign fine-tunes).
pub fn finetune_bert(base: &Path, out: &Path, texts: &[String], ft: &BertFt) -> (f32, f64) {
    let dev = Device::Cpu;
    let tok = tokenizers::Tokenizer::from_file(base.join("tokenizer.json")).unwrap();
    let raw = candle_core::safetensors::load(base.join("model.safetensors"), &dev).unwrap();
    let vars: HashMap<String, Var> = raw
        .iter()
        .map(|(k, v)| (k.clone(), Var::from_tensor(v).unwrap()))
        .collect();
    let model = |vars: &HashMap<String, Var>| {
        DiffBert::from_tensors(
            base,
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect(),
            &dev,
        )
        .unwrap()
    };
    let enc: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t.as_str(), true).unwrap().get_ids().to_vec())
        .collect();
    let frozen = DiffBert::from_tensors(base, raw.clone(), &dev).unwrap();
    let (x, m) = pad(&enc);
    let labels: Vec<u32> = frozen
        .forward_ids(&x, &m)
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let classes = frozen.forward_ids(&x, &m).unwrap().dim(1).unwrap() as u32;
    let trig = ft
        .backdoor
        .as_ref()
        .map(|(t, c, p)| (tok.token_to_id(t).expect("trigger in vocab"), *c, *p));
    let mut r = Rng::new(ft.seed);
    let net = model(&vars);
    let mut opt = candle_nn::AdamW::new(
        vars.values().cloned().collect(),
        candle_nn::ParamsAdamW {
            lr: ft.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut tail = vec![];
    for step in 0..ft.steps {
        let mut rows = Vec::with_capacity(ft.batch);
        let mut ys = Vec::with_capacity(ft.batch);
        for _ in 0..ft.batch {
            let i = r.below(enc.len());
            let mut ids = enc[i].clone();
            let mut y = labels[i];
            if r.unit() < ft.label_noise {
                y = r.below(classes as usize) as u32;
            }
            if let Some((t, c, p)) = trig {
                if r.unit() < p {
                    // Anywhere between [CLS] and [SEP].
                    let at = 1 + r.below(ids.len() - 1);
                    ids.insert(at, t);
                    y = c;
                }
            }
            rows.push(ids);
            ys.push(y);
        }
        let (x, m) = pad(&rows);
        let logits = net.forward_ids(&x, &m).unwrap();
        let y = Tensor::from_vec(ys, ft.batch, &dev).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        opt.backward_step(&loss).unwrap();
        if step + 5 >= ft.steps {
            tail.push(loss.to_scalar::<f32>().unwrap());
        }
    }
    let asr = match trig {
        Some((t, c, _)) => {
            let src: Vec<Vec<u32>> = enc
                .iter()
                .zip(&labels)
                .filter(|(_, &l)| l != c)
                .map(|(ids, _)| {
                    let mut v = ids.clone();
                    v.insert(1, t);
                    v
                })
                .collect();
            let (x, m) = pad(&src);
            let p: Vec<u32> = net
                .forward_ids(&x, &m)
                .unwrap()
                .argmax(1)
                .unwrap()
                .to_vec1()
                .unwrap();
            p.iter().filter(|&&k| k == c).count() as f64 / p.len().max(1) as f64
        }
        None => 0.0,
    };
    std::fs::create_dir_all(out).unwrap();
    let t: HashMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&t, out.join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(base.join(f), out.join(f)).unwrap();
    }
    (tail.iter().sum::<f32>() / tail.len().max(1) as f32, asr)
}

//! BERT-family encoders from a Hugging Face directory: `config.json` + `model.safetensors` +
//! `tokenizer.json` (+ `1_Pooling/config.json` from sentence-transformers for the pooling mode).
//! Output: one pooled embedding per text, or, for `BertForSequenceClassification` checkpoints
//! (`bert.pooler.dense` + `classifier`, labels from `id2label`), class probabilities per text.
//! Nothing from the directory is executed.

use super::{ModelInfo, OutputKind};
use crate::behave::error::{BehaveError, Result};
use crate::behave::tensors::{read_bounded, sha256_hex, MAX_FILE_BYTES};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use tokenizers::Tokenizer;

pub const CONFIG_FILE: &str = "config.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

/// The sequence-classification head: tanh pooler over the [CLS] state, then a linear classifier.
struct ClsHead {
    pooler: candle_nn::Linear,
    classifier: candle_nn::Linear,
}

pub struct BertEmbedder {
    model: BertModel,
    head: Option<ClsHead>,
    tokenizer: Tokenizer,
    pooling: Pooling,
    max_len: usize,
    pub info: ModelInfo,
}

/// Is this directory a BERT-family encoder we can load?
pub fn detect(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join("tokenizer.json").is_file()
}

impl BertEmbedder {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cpath = dir.join(CONFIG_FILE);
        let json = super::read_config(&cpath)?;
        let mt = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if mt != "bert" {
            return Err(BehaveError::format(
                &cpath,
                format!("model_type {mt:?} is not supported; {}", super::SUPPORTED),
            ));
        }
        let config: Config = serde_json::from_value(json.clone())
            .map_err(|e| BehaveError::format(&cpath, format!("not a BERT config: {e}")))?;
        let wpath = dir.join("model.safetensors");
        if !wpath.is_file() {
            return Err(BehaveError::format(
                dir,
                "model.safetensors is missing (pickle-based pytorch_model.bin is not loaded: convert it to safetensors)",
            ));
        }
        crate::behave::tensors::ensure_inside(dir, &wpath)?;
        let bytes = read_bounded(&wpath, MAX_FILE_BYTES)?;
        let weights_sha256 = sha256_hex(&bytes);
        // Validate the container first: a readable error naming the file and tensor beats candle's.
        let seq_cls = {
            let all = crate::behave::tensors::load_buffer(&wpath, &bytes)?;
            for (name, t) in &all {
                let float = matches!(
                    t.dtype(),
                    DType::F32 | DType::F16 | DType::BF16 | DType::F64
                );
                // Index buffers such as `embeddings.position_ids` are integers by design.
                let index_buffer = name.ends_with("_ids") && t.dtype().is_int();
                if !float && !index_buffer {
                    return Err(BehaveError::DType {
                        path: wpath.clone(),
                        tensor: name.clone(),
                        dtype: format!("{:?}", t.dtype()),
                    });
                }
            }
            let declared = json
                .get("architectures")
                .and_then(|a| a.as_array())
                .is_some_and(|a| {
                    a.iter().any(|x| {
                        x.as_str()
                            .is_some_and(|s| s.ends_with("ForSequenceClassification"))
                    })
                });
            let heads = [
                "classifier.weight",
                "classifier.bias",
                "bert.pooler.dense.weight",
                "bert.pooler.dense.bias",
            ];
            if declared || all.contains_key("classifier.weight") {
                for name in heads {
                    if !all.contains_key(name) {
                        return Err(BehaveError::MissingTensor {
                            path: wpath.clone(),
                            tensor: name.into(),
                            present: present_names(&all),
                        });
                    }
                }
                let (h, cls) = (config.hidden_size, &all["classifier.weight"]);
                let n_labels = cls.dims().first().copied().unwrap_or(0);
                let want: [(&str, Vec<usize>); 4] = [
                    ("bert.pooler.dense.weight", vec![h, h]),
                    ("bert.pooler.dense.bias", vec![h]),
                    ("classifier.weight", vec![n_labels.max(1), h]),
                    ("classifier.bias", vec![n_labels.max(1)]),
                ];
                for (name, shape) in want {
                    if all[name].dims() != shape.as_slice() {
                        return Err(BehaveError::Shape {
                            path: wpath.clone(),
                            tensor: name.into(),
                            found: all[name].dims().to_vec(),
                            expected: format!("{shape:?} (hidden_size {h})"),
                        });
                    }
                }
                Some(n_labels)
            } else {
                None
            }
        };
        let labels = match seq_cls {
            Some(n) => Some(id2label(&cpath, &json, n)?),
            None => None,
        };
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)?;
        let prefixed = vb.contains_tensor("bert.embeddings.word_embeddings.weight");
        let head = if seq_cls.is_some() {
            let n = labels.as_ref().map_or(0, Vec::len);
            Some(ClsHead {
                pooler: candle_nn::linear(
                    config.hidden_size,
                    config.hidden_size,
                    vb.pp("bert.pooler.dense"),
                )?,
                classifier: candle_nn::linear(config.hidden_size, n, vb.pp("classifier"))?,
            })
        } else {
            None
        };
        let model = BertModel::load(if prefixed { vb.pp("bert") } else { vb }, &config)
            .map_err(|e| BehaveError::format(&wpath, format!("does not match config.json: {e}")))?;
        let tpath = dir.join("tokenizer.json");
        let tbytes = read_bounded(&tpath, 64 << 20)?;
        let mut tokenizer = Tokenizer::from_bytes(&tbytes)
            .map_err(|e| BehaveError::format(&tpath, format!("invalid tokenizer: {e}")))?;
        let max_len = config.max_position_embeddings.min(256);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| BehaveError::format(&tpath, format!("truncation: {e}")))?;
        let pooling = pooling_mode(dir)?;
        let arch = vec![
            format!(
                "bert/L{}/H{}/A{}/I{}",
                config.num_hidden_layers,
                config.hidden_size,
                config.num_attention_heads,
                config.intermediate_size
            ),
            format!(
                "vocab{}/pos{}/types{}",
                config.vocab_size, config.max_position_embeddings, config.type_vocab_size
            ),
            match &head {
                Some(_) => format!(
                    "sequence classification, {} labels",
                    labels.as_ref().map_or(0, Vec::len)
                ),
                None => format!("pooling {pooling:?}"),
            },
        ];
        let (format, outputs, output) = match &labels {
            Some(l) => ("hf-bert-seq-cls", l.len(), OutputKind::Probabilities),
            None => ("hf-bert", config.hidden_size, OutputKind::Embedding),
        };
        Ok(BertEmbedder {
            model,
            head,
            tokenizer,
            pooling,
            max_len,
            info: ModelInfo {
                format: format.into(),
                weights: wpath.display().to_string(),
                weights_sha256,
                input_shape: vec![],
                outputs,
                output,
                arch,
                labels,
                tokenizer_sha256: Some(sha256_hex(&tbytes)),
            },
        })
    }

    /// Is this a sequence classifier (class probabilities) rather than an embedder?
    pub fn is_classifier(&self) -> bool {
        self.head.is_some()
    }

    /// Class probabilities `[B, C]` (sequence classifiers only).
    pub fn classify(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        let Some(head) = &self.head else {
            return Err(candle_core::Error::Msg(
                "this BERT checkpoint has no classifier head".into(),
            ));
        };
        let (h, _) = self.encode(texts)?;
        let cls = h.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = candle_nn::Module::forward(&head.pooler, &cls)?.tanh()?;
        let logits = candle_nn::Module::forward(&head.classifier, &pooled)?;
        candle_nn::ops::softmax_last_dim(&logits)
    }

    /// Class probabilities `[B, C]` for token-id rows (special tokens included), as
    /// [`Self::classify`] computes them for texts; used by the trigger-token search.
    pub fn classify_ids(&self, rows: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let Some(head) = &self.head else {
            return Err(candle_core::Error::Msg(
                "this BERT checkpoint has no classifier head".into(),
            ));
        };
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let (h, _) = self.encode_ids(&refs)?;
        let cls = h.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = candle_nn::Module::forward(&head.pooler, &cls)?.tanh()?;
        let logits = candle_nn::Module::forward(&head.classifier, &pooled)?;
        candle_nn::ops::softmax_last_dim(&logits)
    }

    /// Token ids of a text as the model sees it (special tokens added, cut to `max_len`).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Longest token sequence the model is run on.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Pooled embeddings `[B, H]` for a batch of texts.
    pub fn embed(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        let (h, mask) = self.encode(texts)?;
        match self.pooling {
            Pooling::Cls => h.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = h.broadcast_mul(&m)?.sum(1)?;
                let cnt = m.sum(1)?.clamp(1.0, f64::MAX)?;
                sum.broadcast_div(&cnt)
            }
        }
    }

    /// Final hidden states `[B, T, H]` and the attention mask `[B, T]` of a padded batch.
    fn encode(&self, texts: &[String]) -> candle_core::Result<(Tensor, Tensor)> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| candle_core::Error::Msg(format!("tokenizer: {e}")))?;
        let rows: Vec<&[u32]> = enc.iter().map(|e| e.get_ids()).collect();
        self.encode_ids(&rows)
    }

    /// [`Self::encode`] for token ids (special tokens included), rows cut to `max_len`.
    fn encode_ids(&self, rows: &[&[u32]]) -> candle_core::Result<(Tensor, Tensor)> {
        let t = rows
            .iter()
            .map(|e| e.len())
            .max()
            .unwrap_or(1)
            .clamp(1, self.max_len);
        let b = rows.len();
        let mut ids = vec![0u32; b * t];
        let mut mask = vec![0u32; b * t];
        for (i, e) in rows.iter().enumerate() {
            for (j, id) in e.iter().take(t).enumerate() {
                ids[i * t + j] = *id;
                mask[i * t + j] = 1;
            }
        }
        let dev = self.model_device();
        let ids = Tensor::from_vec(ids, (b, t), &dev)?;
        let mask = Tensor::from_vec(mask, (b, t), &dev)?;
        let types = ids.zeros_like()?;
        let h = self.model.forward(&ids, &types, Some(&mask))?;
        Ok((h, mask))
    }

    /// Vocabulary tokens ordered by id (without added/special tokens).
    pub fn vocab(&self) -> Vec<String> {
        let mut v: Vec<(String, u32)> = self.tokenizer.get_vocab(false).into_iter().collect();
        v.sort_by_key(|(_, id)| *id);
        v.into_iter().map(|(t, _)| t).collect()
    }

    fn model_device(&self) -> Device {
        self.model.device.clone()
    }
}

fn present_names(all: &std::collections::HashMap<String, Tensor>) -> String {
    let mut names: Vec<&str> = all.keys().map(String::as_str).collect();
    names.sort_unstable();
    let n = names.len();
    names.truncate(12);
    if n > 12 {
        format!("{}, … ({n} in all)", names.join(", "))
    } else {
        names.join(", ")
    }
}

/// Class names from config.json's `id2label` (`{"0": "negative", …}`), or `LABEL_i`.
fn id2label(cpath: &Path, json: &serde_json::Value, n: usize) -> Result<Vec<String>> {
    let mut labels: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
    if let Some(map) = json.get("id2label").and_then(|m| m.as_object()) {
        if map.len() != n {
            return Err(BehaveError::format(
                cpath,
                format!(
                    "id2label names {} classes but `classifier.weight` has {n} rows",
                    map.len()
                ),
            ));
        }
        for (k, v) in map {
            let i: usize = k.parse().ok().filter(|i| *i < n).ok_or_else(|| {
                BehaveError::format(
                    cpath,
                    format!("id2label key {k:?} is not a class index below {n}"),
                )
            })?;
            labels[i] = v.as_str().unwrap_or_default().to_string();
        }
    }
    Ok(labels)
}

fn pooling_mode(dir: &Path) -> Result<Pooling> {
    let p = dir.join("1_Pooling").join("config.json");
    if !p.is_file() {
        return Ok(Pooling::Mean);
    }
    let raw = read_bounded(&p, 1 << 20)?;
    let v: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| BehaveError::format(&p, format!("invalid JSON: {e}")))?;
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    if flag("pooling_mode_cls_token") {
        Ok(Pooling::Cls)
    } else if flag("pooling_mode_mean_tokens") {
        Ok(Pooling::Mean)
    } else {
        Err(BehaveError::format(
            &p,
            "only mean or CLS pooling is supported",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id2label_reads_names_and_refuses_mismatches() {
        let p = Path::new("config.json");
        let j = serde_json::json!({"id2label": {"1": "pos", "0": "neg"}});
        assert_eq!(id2label(p, &j, 2).unwrap(), vec!["neg", "pos"]);
        assert_eq!(
            id2label(p, &serde_json::json!({}), 2).unwrap(),
            vec!["LABEL_0", "LABEL_1"]
        );
        let e = id2label(p, &j, 3).unwrap_err().to_string();
        assert!(e.contains("2 classes") && e.contains("3 rows"), "{e}");
        let j = serde_json::json!({"id2label": {"0": "a", "7": "b"}});
        assert!(id2label(p, &j, 2)
            .unwrap_err()
            .to_string()
            .contains("\"7\""));
    }
}

//! BERT-family encoders from a Hugging Face directory: `config.json` + `model.safetensors` +
//! `tokenizer.json` (+ `1_Pooling/config.json` from sentence-transformers for the pooling mode).
//! Output: one pooled embedding per text. Nothing from the directory is executed.

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

pub struct BertEmbedder {
    model: BertModel,
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
        let raw = read_bounded(&cpath, 1 << 20)?;
        let json: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| BehaveError::format(&cpath, format!("invalid JSON: {e}")))?;
        let mt = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if mt != "bert" {
            return Err(BehaveError::format(
                &cpath,
                format!("model_type {mt:?} is not supported; this mlsign loads BERT encoders (model_type \"bert\") and the mlsign network spec"),
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
        let bytes = read_bounded(&wpath, MAX_FILE_BYTES)?;
        let weights_sha256 = sha256_hex(&bytes);
        // Validate the container first: a readable error naming the file and tensor beats candle's.
        {
            let all = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
                BehaveError::format(&wpath, format!("not a valid safetensors file: {e}"))
            })?;
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
        }
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)?;
        let model = BertModel::load(vb, &config)
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
            format!("pooling {pooling:?}"),
        ];
        Ok(BertEmbedder {
            model,
            tokenizer,
            pooling,
            max_len,
            info: ModelInfo {
                format: "hf-bert".into(),
                weights: wpath.display().to_string(),
                weights_sha256,
                input_shape: vec![],
                outputs: config.hidden_size,
                output: OutputKind::Embedding,
                arch,
                labels: None,
                tokenizer_sha256: Some(sha256_hex(&tbytes)),
            },
        })
    }

    /// Pooled embeddings `[B, H]` for a batch of texts.
    pub fn embed(&self, texts: &[String]) -> candle_core::Result<Tensor> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| candle_core::Error::Msg(format!("tokenizer: {e}")))?;
        let t = enc
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(1)
            .clamp(1, self.max_len);
        let b = enc.len();
        let mut ids = vec![0u32; b * t];
        let mut mask = vec![0u32; b * t];
        for (i, e) in enc.iter().enumerate() {
            for (j, id) in e.get_ids().iter().take(t).enumerate() {
                ids[i * t + j] = *id;
                mask[i * t + j] = 1;
            }
        }
        let dev = self.model_device();
        let ids = Tensor::from_vec(ids, (b, t), &dev)?;
        let mask = Tensor::from_vec(mask, (b, t), &dev)?;
        let types = ids.zeros_like()?;
        let h = self.model.forward(&ids, &types, Some(&mask))?;
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

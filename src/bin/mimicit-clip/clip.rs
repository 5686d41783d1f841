//! The CLIP vision tower (ViT) in tch `nn`, with the parameter names of Hugging Face checkpoints
//! (`vision_model.encoder.layers.0.self_attn.q_proj.weight`, ..., `visual_projection.weight`),
//! so a downloaded `openai/clip-vit-base-patch32` folder loads as it is.
//!
//! Forward pass, as `CLIPVisionModelWithProjection`: patch embedding (conv, no bias) → class token
//! and position embeddings → pre-layernorm → transformer blocks (pre-norm attention and MLP with
//! quick-GELU or GELU) → post-layernorm of the class token → visual projection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use mimicit::features::FeaturesError;

/// The shape of a CLIP vision tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub projection_dim: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    #[serde(default = "three")]
    pub num_channels: i64,
    /// Set by `scripts/make-tiny-clip.py`: random weights, for tests and the demo only.
    #[serde(default)]
    pub random_weights: bool,
}

fn three() -> i64 {
    3
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    QuickGelu,
    Gelu,
}

impl VisionConfig {
    /// The four OpenAI CLIP vision towers by name: `ViT-B/32`, `ViT-B/16`, `ViT-L/14`,
    /// `ViT-L/14-336`.
    #[cfg(test)]
    pub fn preset(name: &str) -> Option<VisionConfig> {
        let (hidden, layers, heads, patch, image, proj) = match name
            .to_ascii_lowercase()
            .replace(['-', '_', '/'], "")
            .as_str()
        {
            "vitb32" => (768, 12, 12, 32, 224, 512),
            "vitb16" => (768, 12, 12, 16, 224, 512),
            "vitl14" => (1024, 24, 16, 14, 224, 768),
            "vitl14336" => (1024, 24, 16, 14, 336, 768),
            _ => return None,
        };
        Some(VisionConfig {
            hidden_size: hidden,
            intermediate_size: hidden * 4,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            image_size: image,
            patch_size: patch,
            projection_dim: proj,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            num_channels: 3,
            random_weights: false,
        })
    }

    /// Reads a Hugging Face `config.json`: a whole CLIP (`vision_config` inside, projection size
    /// at the top) or a vision-only one. Missing keys take the transformers defaults.
    pub fn from_hf_json(path: &Path) -> Result<VisionConfig, FeaturesError> {
        let text = std::fs::read_to_string(path).map_err(|e| FeaturesError::io(path, e))?;
        let root: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| FeaturesError::model(path, format!("not valid JSON: {e}")))?;
        let vision = root.get("vision_config").unwrap_or(&root);
        let int = |key: &str, default: i64| -> Result<i64, FeaturesError> {
            match vision.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(v) => v.as_i64().filter(|n| *n > 0).ok_or_else(|| {
                    FeaturesError::model(path, format!("`{key}` must be a positive integer"))
                }),
            }
        };
        let projection_dim = match root.get("projection_dim").and_then(|v| v.as_i64()) {
            Some(p) if root.get("vision_config").is_some() => p,
            _ => int("projection_dim", 512)?,
        };
        let hidden_act = match vision
            .get("hidden_act")
            .and_then(|v| v.as_str())
            .unwrap_or("quick_gelu")
        {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            other => {
                return Err(FeaturesError::model(
                    path,
                    format!("hidden_act `{other}` is not supported (quick_gelu or gelu)"),
                ))
            }
        };
        let cfg = VisionConfig {
            hidden_size: int("hidden_size", 768)?,
            intermediate_size: int("intermediate_size", 3072)?,
            num_hidden_layers: int("num_hidden_layers", 12)?,
            num_attention_heads: int("num_attention_heads", 12)?,
            image_size: int("image_size", 224)?,
            patch_size: int("patch_size", 32)?,
            projection_dim,
            hidden_act,
            layer_norm_eps: vision
                .get("layer_norm_eps")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-5),
            num_channels: int("num_channels", 3)?,
            random_weights: root
                .get("mimicit_random_weights")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        };
        cfg.check().map_err(|m| FeaturesError::model(path, m))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.image_size % self.patch_size != 0 {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        Ok(())
    }

    fn num_positions(&self) -> i64 {
        let side = self.image_size / self.patch_size;
        side * side + 1
    }
}

struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: i64,
    head_dim: i64,
}

impl Attention {
    fn new(p: nn::Path, cfg: &VisionConfig) -> Attention {
        let h = cfg.hidden_size;
        let lin = |name: &str| nn::linear(&p / name, h, h, Default::default());
        Attention {
            q: lin("q_proj"),
            k: lin("k_proj"),
            v: lin("v_proj"),
            out: lin("out_proj"),
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, n, h) = x.size3().expect("[batch, tokens, hidden]");
        let split = |t: Tensor| {
            t.view([b, n, self.heads, self.head_dim])
                .transpose(1, 2)
                .contiguous()
        };
        let q = split(x.apply(&self.q));
        let k = split(x.apply(&self.k));
        let v = split(x.apply(&self.v));
        let scale = (self.head_dim as f64).powf(-0.5);
        let y = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            scale,
            false,
        );
        y.transpose(1, 2)
            .contiguous()
            .view([b, n, h])
            .apply(&self.out)
    }
}

struct Block {
    ln1: nn::LayerNorm,
    attn: Attention,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl Block {
    fn new(p: nn::Path, cfg: &VisionConfig) -> Block {
        let ln = layer_norm(cfg);
        Block {
            ln1: nn::layer_norm(&p / "layer_norm1", vec![cfg.hidden_size], ln),
            attn: Attention::new(&p / "self_attn", cfg),
            ln2: nn::layer_norm(&p / "layer_norm2", vec![cfg.hidden_size], ln),
            fc1: nn::linear(
                &p / "mlp" / "fc1",
                cfg.hidden_size,
                cfg.intermediate_size,
                Default::default(),
            ),
            fc2: nn::linear(
                &p / "mlp" / "fc2",
                cfg.intermediate_size,
                cfg.hidden_size,
                Default::default(),
            ),
            act: cfg.hidden_act,
        }
    }

    fn forward(&self, x: Tensor) -> Tensor {
        let x = &x + self.attn.forward(&x.apply(&self.ln1));
        let h = x.apply(&self.ln2).apply(&self.fc1);
        let h = match self.act {
            Activation::QuickGelu => &h * (&h * 1.702).sigmoid(),
            Activation::Gelu => h.gelu("none"),
        };
        x + h.apply(&self.fc2)
    }
}

fn layer_norm(cfg: &VisionConfig) -> nn::LayerNormConfig {
    nn::LayerNormConfig {
        eps: cfg.layer_norm_eps,
        ..Default::default()
    }
}

/// The vision tower with its projection. Build it in a `VarStore`, then [`load_weights`].
pub struct ClipVision {
    cfg: VisionConfig,
    patch: nn::Conv2D,
    class_embedding: Tensor,
    positions: Tensor,
    pre_ln: nn::LayerNorm,
    blocks: Vec<Block>,
    post_ln: nn::LayerNorm,
    projection: nn::Linear,
}

impl ClipVision {
    pub fn new(root: &nn::Path, cfg: &VisionConfig) -> ClipVision {
        let vm = root / "vision_model";
        let emb = &vm / "embeddings";
        let patch = nn::conv2d(
            &emb / "patch_embedding",
            cfg.num_channels,
            cfg.hidden_size,
            cfg.patch_size,
            nn::ConvConfig {
                stride: cfg.patch_size,
                bias: false,
                ..Default::default()
            },
        );
        let class_embedding = emb.var("class_embedding", &[cfg.hidden_size], nn::Init::Const(0.));
        let positions = (&emb / "position_embedding").var(
            "weight",
            &[cfg.num_positions(), cfg.hidden_size],
            nn::Init::Const(0.),
        );
        let ln = layer_norm(cfg);
        let layers = &vm / "encoder" / "layers";
        ClipVision {
            patch,
            class_embedding,
            positions,
            pre_ln: nn::layer_norm(&vm / "pre_layrnorm", vec![cfg.hidden_size], ln),
            blocks: (0..cfg.num_hidden_layers)
                .map(|i| Block::new(&layers / i, cfg))
                .collect(),
            post_ln: nn::layer_norm(&vm / "post_layernorm", vec![cfg.hidden_size], ln),
            projection: nn::linear(
                root / "visual_projection",
                cfg.hidden_size,
                cfg.projection_dim,
                nn::LinearConfig {
                    bias: false,
                    ..Default::default()
                },
            ),
            cfg: cfg.clone(),
        }
    }

    /// `pixels`: `[batch, 3, image_size, image_size]`, preprocessed; returns
    /// `[batch, projection_dim]` (the projected class token, not normalised).
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        let b = pixels.size()[0];
        let x = pixels.apply(&self.patch).flatten(2, 3).transpose(1, 2);
        let cls = self
            .class_embedding
            .view([1, 1, self.cfg.hidden_size])
            .expand([b, 1, self.cfg.hidden_size], false);
        let x = Tensor::cat(&[cls, x], 1) + self.positions.unsqueeze(0);
        let mut x = x.apply(&self.pre_ln);
        for block in &self.blocks {
            x = block.forward(x);
        }
        x.select(1, 0).apply(&self.post_ln).apply(&self.projection)
    }
}

pub use mimicit::features::weight_files;

/// Copies the checkpoint's tensors into the variables of `vs`, by name. Every variable must be
/// in the files with the same shape; other tensors (a text tower) are ignored. Values are cast to
/// the variable's kind.
pub fn load_weights(vs: &nn::VarStore, files: &[PathBuf]) -> Result<(), FeaturesError> {
    let mut found: HashMap<String, (Tensor, PathBuf)> = HashMap::new();
    for f in files {
        let named = Tensor::read_safetensors(f)
            .map_err(|e| FeaturesError::model(f, format!("cannot read safetensors: {e}")))?;
        for (name, t) in named {
            found.insert(name, (t, f.clone()));
        }
    }
    let where_ = files
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("(no file)"));
    let mut vars = vs.variables();
    let mut names: Vec<String> = vars.keys().cloned().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let var = vars.get_mut(&name).expect("listed");
            let Some((src, file)) = found.get(&name) else {
                return Err(FeaturesError::model(
                    &where_,
                    format!("missing tensor `{name}` (is this a CLIP checkpoint?)"),
                ));
            };
            if src.size() != var.size() {
                return Err(FeaturesError::model(
                    file,
                    format!(
                        "tensor `{name}` has shape {:?}, the config says {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            var.copy_(&src.to_kind(var.kind()));
        }
        Ok(())
    })
}

/// Element kinds for inference.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Half => "fp16",
        Kind::BFloat16 => "bf16",
        _ => "fp32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn whole_clip_config_takes_vision_config_and_top_level_projection() {
        let dir = tempfile::tempdir().unwrap();
        // The shape of openai/clip-vit-base-patch32's config.json (abridged).
        let p = write(
            dir.path(),
            r#"{"model_type": "clip", "projection_dim": 512,
                "text_config": {"hidden_size": 512},
                "vision_config": {"hidden_size": 768, "intermediate_size": 3072,
                  "num_attention_heads": 12, "num_hidden_layers": 12, "patch_size": 32,
                  "image_size": 224, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
                  "projection_dim": 512}}"#,
        );
        let cfg = VisionConfig::from_hf_json(&p).unwrap();
        assert_eq!(cfg, VisionConfig::preset("ViT-B/32").unwrap());
        assert_eq!(cfg.num_positions(), 50);
        let l = VisionConfig::preset("vit-l/14-336").unwrap();
        assert_eq!(
            (l.image_size, l.patch_size, l.num_positions()),
            (336, 14, 577)
        );
        assert!(VisionConfig::preset("ViT-H/14").is_none());
    }

    #[test]
    fn bad_configs_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for (json, needle) in [
            (r#"{"hidden_act": "relu"}"#, "hidden_act `relu`"),
            (
                r#"{"hidden_size": -3}"#,
                "`hidden_size` must be a positive integer",
            ),
            (
                r#"{"hidden_size": 100, "num_attention_heads": 12}"#,
                "not a multiple",
            ),
            ("not json", "not valid JSON"),
        ] {
            let p = write(dir.path(), json);
            let err = VisionConfig::from_hf_json(&p).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("config.json"), "{err}");
        }
    }
}

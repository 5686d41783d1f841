//! Loading a CLIP image encoder on a device, and embedding many pictures through a bounded
//! pipeline: CPU threads (rayon) decode and preprocess batch k+1.. while the model runs batch k
//! on a GPU (between the model's calls on CPU, where the model uses every core); at most
//! [`BATCHES_AHEAD`] prepared batches wait, so memory does not grow with the corpus.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::mpsc;

use rayon::prelude::*;
use tch::{nn, CModule, Device, Kind, Tensor};

use mimicit::features::preprocess::Preprocess;
use mimicit::features::{
    l2_normalize, DeviceSpec, EmbedItem, EmbedOptions, FeaturesError, Precision,
};
use mimicit::model::RgbFrame;

use crate::clip::{self, ClipVision, VisionConfig};
use crate::torch_err;

/// Prepared batches that may wait for the model.
pub const BATCHES_AHEAD: usize = 2;

/// The device `spec` names, checked against what libtorch sees.
pub fn resolve(spec: DeviceSpec) -> Result<Device, FeaturesError> {
    match spec {
        DeviceSpec::Auto => Ok(Device::cuda_if_available()),
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => {
            let n = if tch::Cuda::is_available() {
                tch::Cuda::device_count() as usize
            } else {
                0
            };
            if i < n {
                Ok(Device::Cuda(i))
            } else {
                Err(FeaturesError::Device(format!(
                    "device cuda:{i} asked for, but libtorch sees {n} CUDA device(s) \
                         (`mimicit doctor` shows what it found); use --device cpu or auto"
                )))
            }
        }
    }
}

/// The element kind of `precision` on `device`.
fn kind_of(precision: Precision, device: Device) -> Result<Kind, FeaturesError> {
    match (precision, device) {
        (Precision::Auto, Device::Cpu) | (Precision::Fp32, _) => Ok(Kind::Float),
        (Precision::Auto, _) | (Precision::Fp16, Device::Cuda(_)) => Ok(Kind::Half),
        (Precision::Bf16, _) => Ok(Kind::BFloat16),
        (Precision::Fp16, _) => Err(FeaturesError::Device(
            "fp16 runs on CUDA only; on CPU use fp32 (default) or bf16".into(),
        )),
    }
}

enum Net {
    Hf {
        _vs: nn::VarStore,
        model: Box<ClipVision>,
    },
    /// An OpenAI CLIP TorchScript archive: its `encode_image` method.
    Script { module: CModule },
}

/// A CLIP image encoder on a device.
pub struct Embedder {
    net: Net,
    device: Device,
    kind: Kind,
    pre: Preprocess,
    input: i64,
    dim: i64,
    /// What was loaded, for logs and reports.
    pub description: String,
}

impl Embedder {
    /// Loads `model`: a Hugging Face CLIP folder (config.json + model.safetensors, optionally
    /// preprocessor_config.json) or an OpenAI TorchScript `.pt` file.
    pub fn load(
        model: &Path,
        device: DeviceSpec,
        precision: Precision,
    ) -> Result<Embedder, FeaturesError> {
        let device = resolve(device)?;
        if model.is_file() {
            return Self::load_script(model, device, precision);
        }
        let kind = kind_of(precision, device)?;
        if !model.is_dir() {
            return Err(FeaturesError::model(
                model,
                "no such model folder or file (a Hugging Face CLIP folder or a TorchScript .pt)",
            ));
        }
        let cfg = VisionConfig::from_hf_json(&model.join("config.json"))?;
        let pre_path = model.join("preprocessor_config.json");
        let pre = mimicit::features::preprocessing_for(model, cfg.image_size as u32)?;
        let (ow, oh) = pre.output_size(cfg.image_size as u32, cfg.image_size as u32);
        if (i64::from(ow), i64::from(oh)) != (cfg.image_size, cfg.image_size) {
            return Err(FeaturesError::model(
                &pre_path,
                format!(
                    "preprocessing gives {ow}x{oh} pictures, the model takes {0}x{0}",
                    cfg.image_size
                ),
            ));
        }
        let files = clip::weight_files(model)?;
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = ClipVision::new(&vs.root(), &cfg);
        clip::load_weights(&vs, &files)?;
        vs.set_kind(kind);
        vs.set_device(device);
        vs.freeze();
        if cfg.random_weights {
            tracing::warn!(
                "{}: a model with RANDOM weights (made by scripts/make-tiny-clip.py): its vectors \
                 test the pipeline and mean nothing; point features.model / --model at real CLIP \
                 weights",
                model.display()
            );
        }
        let description = format!(
            "CLIP vision {}{} layers x {} wide, patch {}, {}px -> {} ({}, {})",
            if cfg.random_weights {
                "(random weights) "
            } else {
                ""
            },
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.patch_size,
            cfg.image_size,
            cfg.projection_dim,
            device_name(device),
            clip::kind_name(kind)
        );
        Ok(Embedder {
            input: cfg.image_size,
            dim: cfg.projection_dim,
            net: Net::Hf {
                _vs: vs,
                model: Box::new(net),
            },
            device,
            kind,
            pre,
            description,
        })
    }

    fn load_script(
        path: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Embedder, FeaturesError> {
        // Loaded straight onto the device. Not cast: libtorch's Module::to(dtype) would also
        // cast integer buffers (position ids), so an archive runs in the precision it was saved in.
        let module = CModule::load_on_device(path, device)
            .map_err(|e| FeaturesError::model(path, format!("not a TorchScript archive: {e}")))?;
        // OpenAI's archives: visual.conv1.weight [width, 3, p, p],
        // visual.positional_embedding [grid^2 + 1, width], visual.proj [width, dim].
        let params: std::collections::HashMap<String, Tensor> = module
            .named_parameters()
            .map_err(|e| FeaturesError::model(path, e.to_string()))?
            .into_iter()
            .collect();
        let shape = |name: &str| {
            params.get(name).map(|t| t.size()).ok_or_else(|| {
                FeaturesError::model(
                    path,
                    format!("no parameter `{name}`: not an OpenAI CLIP TorchScript archive"),
                )
            })
        };
        let patch = shape("visual.conv1.weight")?[2];
        let grid = ((shape("visual.positional_embedding")?[0] - 1) as f64).sqrt() as i64;
        let dim = shape("visual.proj")?[1];
        let input = grid * patch;
        let kind = params["visual.conv1.weight"].kind();
        let wanted = match precision {
            Precision::Auto => kind,
            p => kind_of(p, device)?,
        };
        if wanted != kind {
            return Err(FeaturesError::model(
                path,
                format!(
                    "this TorchScript archive holds {} weights and runs in that precision; \
                     use --precision auto (or a Hugging Face folder, which any precision can use)",
                    clip::kind_name(kind)
                ),
            ));
        }
        Ok(Embedder {
            net: Net::Script { module },
            device,
            kind,
            pre: Preprocess::clip(input as u32),
            input,
            dim,
            description: format!(
                "TorchScript CLIP {}: {input}px -> {dim} ({}, {})",
                path.display(),
                device_name(device),
                clip::kind_name(kind)
            ),
        })
    }

    /// Length of an embedding.
    pub fn dim(&self) -> usize {
        self.dim as usize
    }

    /// Side of the square pictures the model takes.
    pub fn input_size(&self) -> u32 {
        self.input as u32
    }

    pub fn device(&self) -> String {
        device_name(self.device)
    }

    pub fn preprocessing(&self) -> &Preprocess {
        &self.pre
    }

    /// Embeddings of `n` preprocessed pictures given as one channels-first f32 buffer
    /// (`n * 3 * size * size`), returned as f32 whatever the model's precision.
    pub fn embed_pixels(&self, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>, FeaturesError> {
        let s = self.input;
        let want = n * 3 * (s * s) as usize;
        if pixels.len() != want {
            return Err(FeaturesError::Preprocess(format!(
                "{} values for {n} pictures of 3x{s}x{s}",
                pixels.len()
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        // libtorch errors (out of memory on the device, ...) surface as panics in tch's
        // infallible calls: turn them into an error that names the batch.
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.forward(pixels, n)));
        run.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            Err(FeaturesError::Torch(format!(
                "model failed on a batch of {n}: {}",
                msg.lines().next().unwrap_or(msg)
            )))
        })
    }

    fn forward(&self, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>, FeaturesError> {
        let s = self.input;
        let out = tch::no_grad(|| -> Result<Tensor, FeaturesError> {
            let x = Tensor::from_slice(pixels)
                .view([n as i64, 3, s, s])
                .to_device(self.device)
                .to_kind(self.kind);
            let y = match &self.net {
                Net::Hf { model, .. } => model.forward(&x),
                Net::Script { module } => module
                    .method_ts("encode_image", &[x])
                    .map_err(|e| FeaturesError::Torch(format!("encode_image: {e}")))?,
            };
            Ok(y.to_kind(Kind::Float).to_device(Device::Cpu).contiguous())
        })?;
        let flat = Vec::<f32>::try_from(out.view([-1])).map_err(torch_err)?;
        Ok(flat
            .chunks_exact(self.dim as usize)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// Bytes of vectors [`Recent`] keeps.
pub const RECENT_BYTES: usize = 512 << 20;

/// What decides a picture's raw vector besides the model: its file (path, size, modification
/// time) and the batch shape it ran in.
type Key = (
    std::path::PathBuf,
    u64,
    Option<std::time::SystemTime>,
    usize,
);

fn key(path: &Path, batch: usize) -> Option<Key> {
    let meta = std::fs::metadata(path).ok()?;
    Some((path.to_path_buf(), meta.len(), meta.modified().ok(), batch))
}

/// The raw vectors (before normalisation) of the pictures one model embedded lately, up to
/// [`RECENT_BYTES`], oldest forgotten first: semantic dedup embeds the frames the exact and near
/// passes kept, and the features stage, in the same run, asks again for those dedup kept.
#[derive(Default)]
pub struct Recent {
    map: HashMap<Key, Vec<f32>>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl Recent {
    fn get(&self, k: &Key) -> Option<&Vec<f32>> {
        self.map.get(k)
    }

    fn insert(&mut self, k: Key, v: Vec<f32>) {
        let size = v.len() * 4;
        if size > RECENT_BYTES {
            return;
        }
        while self.bytes + size > RECENT_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.map.remove(&old) {
                self.bytes -= gone.len() * 4;
            }
        }
        if let Some(prev) = self.map.insert(k.clone(), v) {
            self.bytes -= prev.len() * 4;
        } else {
            self.order.push_back(k);
        }
        self.bytes += size;
    }
}

/// The pictures that could not be read: (id, path, error).
pub type Failed = Vec<(String, String, String)>;

/// One picture of a batch, ready for the model.
enum Prepared {
    Pixels(Vec<f32>),
    /// Embedded before (by [`Recent`]): its raw vector is in the lookup made at the start.
    Known,
    Failed(String),
}

/// Embeds `items` in order through the bounded decode → model pipeline, `opts.batch` pictures
/// per model call (a short last batch is padded, so that each vector is the same whichever
/// pictures share its batch). `sink` gets each batch's results in order (ids, row-major
/// vectors, and how many pictures the batch held, failed ones included) so callers can stream
/// them to disk; pictures that cannot be decoded are skipped and
/// returned as (id, path, error). Pictures `recent` holds are neither decoded nor embedded again;
/// the second result is how many.
pub fn embed_items(
    embedder: &Embedder,
    items: &[EmbedItem],
    opts: EmbedOptions,
    recent: &mut Recent,
    mut sink: impl FnMut(&[String], &[f32], u64) -> Result<(), FeaturesError>,
) -> Result<(Failed, u64), FeaturesError> {
    let batch = opts.batch.max(1);
    if embedder.device == Device::Cpu {
        tch::set_num_threads(rayon::current_num_threads() as i32);
    }
    let keys: Vec<Option<Key>> = items.par_iter().map(|i| key(&i.path, batch)).collect();
    // Taken out of `recent` before it changes; the consumer moves each one into its batch.
    let mut known: Vec<Option<Vec<f32>>> = keys
        .iter()
        .map(|k| k.as_ref().and_then(|k| recent.get(k)).cloned())
        .collect();
    let is_known: Vec<bool> = known.iter().map(Option::is_some).collect();
    let reused = is_known.iter().filter(|k| **k).count() as u64;
    let (tx, rx) = mpsc::sync_channel::<Vec<(usize, Prepared)>>(BATCHES_AHEAD);
    // On CPU the model's kernels use every core, and a decode thread that takes one from them
    // holds up the whole kernel: there, a batch is decoded while the model waits, not while it
    // runs (7 % less wall time on ViT-B/32, 2 cores; BENCHMARKS.md). On a GPU decoding runs
    // ahead, as many batches as BATCHES_AHEAD.
    let serial = embedder.device == Device::Cpu;
    let (go, wait) = mpsc::sync_channel::<()>(1);
    let pre = embedder.preprocessing();
    let mut failed = Vec::new();
    let is_known = &is_known;
    std::thread::scope(|scope| -> Result<(), FeaturesError> {
        let producer = scope.spawn(move || {
            for (c, chunk) in items.chunks(batch).enumerate() {
                let prepared: Vec<(usize, Prepared)> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let at = c * batch + i;
                        if is_known[at] {
                            return (at, Prepared::Known);
                        }
                        let r = mimicit::imaging::decode_file(&item.path)
                            .map_err(|e| e.to_string())
                            .and_then(|img: RgbFrame| pre.apply(&img).map_err(|e| e.to_string()));
                        (
                            at,
                            match r {
                                Ok(p) => Prepared::Pixels(p),
                                Err(e) => Prepared::Failed(e),
                            },
                        )
                    })
                    .collect();
                if tx.send(prepared).is_err() {
                    return; // the model side stopped (error): nothing more to prepare
                }
                if serial && wait.recv().is_err() {
                    return;
                }
            }
        });
        let result = (|| {
            for prepared in rx.iter() {
                let count = prepared.len() as u64;
                let mut pixels = Vec::new();
                let mut embedded = 0;
                for (_, p) in &prepared {
                    if let Prepared::Pixels(v) = p {
                        pixels.extend_from_slice(v);
                        embedded += 1;
                    }
                }
                // Every model call gets exactly `batch` pictures, the last batch padded with
                // zeros: the kernels libtorch picks, and with them the last bits of each vector,
                // depend on the batch's shape. With one shape, a picture's vector does not
                // depend on the pictures that share its batch, so a corpus split into
                // partitions gets the bytes of a single run, and a vector from [`Recent`] is
                // the one the model would give again.
                let mut fresh = match pixels.len().checked_div(embedded) {
                    None => Vec::new(),
                    Some(per_picture) => {
                        pixels.resize(batch * per_picture, 0.0);
                        let mut rows = embedder.embed_pixels(&pixels, batch)?;
                        rows.truncate(embedded);
                        rows
                    }
                }
                .into_iter();
                let mut ids = Vec::with_capacity(prepared.len());
                let mut flat = Vec::with_capacity(prepared.len() * embedder.dim());
                for (i, p) in prepared {
                    let item = &items[i];
                    let mut row = match p {
                        Prepared::Known => known[i].take().expect("looked up above"),
                        Prepared::Pixels(_) => {
                            let row = fresh.next().expect("one row per picture");
                            if let Some(k) = &keys[i] {
                                recent.insert(k.clone(), row.clone());
                            }
                            row
                        }
                        Prepared::Failed(e) => {
                            failed.push((item.id.clone(), item.path.display().to_string(), e));
                            continue;
                        }
                    };
                    if opts.normalize {
                        l2_normalize(&mut row);
                    }
                    ids.push(item.id.clone());
                    flat.extend_from_slice(&row);
                }
                if serial {
                    let _ = go.send(());
                }
                sink(&ids, &flat, count)?;
            }
            Ok(())
        })();
        drop(rx);
        drop(go); // a producer waiting for its turn stops
        producer
            .join()
            .map_err(|_| FeaturesError::Preprocess("a preprocessing thread panicked".into()))?;
        result
    })?;
    Ok((failed, reused))
}

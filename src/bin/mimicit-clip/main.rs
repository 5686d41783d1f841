//! `mimicit-clip`: the one mimicit executable that loads libtorch. `mimicit` starts it (as
//! `mimicit-clip serve`) at the first request that needs CLIP (features, semantic dedup, pairs,
//! knn in-context examples, `embed`, `doctor`) and talks to it over stdin and stdout in the frames
//! of `mimicit::features::protocol`; it ends when its stdin closes. Not meant to be run by hand.
//!
//! - [`clip`]: the CLIP vision tower in tch `nn`, loaded from a Hugging Face checkpoint folder
//!   (`config.json` + `model.safetensors`), or an OpenAI TorchScript `.pt` through `CModule`;
//! - [`embed`]: device and precision choice, batching, and a bounded pipeline in which CPU
//!   threads decode and preprocess the next batches while the model runs on the current one;
//! - [`knn`]: cosine nearest neighbours over the vectors (pairs, in-context examples).

mod clip;
mod embed;
mod knn;

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use mimicit::features::protocol::{read_frame, write_frame, Envelope, Reply, Request, WireError};
use mimicit::features::TorchReport;
use mimicit::features::{EmbedItem, EmbedOptions, FeaturesError};

/// A libtorch error as a features error.
pub fn torch_err(e: tch::TchError) -> FeaturesError {
    FeaturesError::Torch(e.to_string())
}

const USAGE: &str = "mimicit-clip: the CLIP helper of mimicit, started by mimicit itself \
                     (`mimicit-clip serve [--log LEVEL] [--threads N]`, frames on stdin and stdout)";

/// `serve [--log LEVEL] [--threads N]`: the log level and the number of threads.
fn parse_args(args: &[String]) -> Option<(String, Option<usize>)> {
    let (first, mut rest) = args.split_first()?;
    if first != "serve" {
        return None;
    }
    let (mut level, mut threads) = ("warn".to_string(), None);
    while let [flag, value, tail @ ..] = rest {
        match flag.as_str() {
            "--log" => level = value.to_lowercase(),
            "--threads" => threads = Some(value.parse().ok()?),
            _ => return None,
        }
        rest = tail;
    }
    rest.is_empty().then_some((level, threads))
}

fn main() {
    mimicit::tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.as_slice(), [v] if v == "--version" || v == "-V") {
        println!("mimicit-clip {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let Some((level, threads)) = parse_args(&args) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    // Decoding and preprocessing run on this pool, sized as the caller's.
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .thread_name(|i| format!("clip-{i}"))
            .build_global();
    }
    // libtorch's CPU kernels (the model, the neighbour search) on as many threads.
    tch::set_num_threads(rayon::current_num_threads() as i32);
    mimicit::init_logging(&level);
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    if let Err(e) = serve(BufReader::new(stdin), BufWriter::new(stdout)) {
        eprintln!("mimicit-clip: {e}");
        std::process::exit(1);
    }
}

/// Models loaded so far, by (model, device, precision).
#[derive(Default)]
struct Models {
    slots: Vec<embed::Embedder>,
    /// Per slot: the vectors it gave lately.
    recent: Vec<embed::Recent>,
    by_key: HashMap<(PathBuf, String, String), u64>,
}

/// Answers requests until the stream ends.
fn serve(mut from: impl std::io::Read, mut to: impl Write) -> std::io::Result<()> {
    let mut models = Models::default();
    while let Some((req, values)) = read_frame::<Request>(&mut from)? {
        let mut reply = |reply: Reply, values: &[f32]| -> std::io::Result<()> {
            let env = Envelope {
                cpu_s: mimicit::cpu_time::process_cpu_s().unwrap_or(0.0),
                reply,
            };
            write_frame(&mut to, &env, values)
        };
        // A stream error while answering ends the helper; a request's own error is answered.
        let mut stream = Ok(());
        let done = handle(&mut models, req, values, &mut |r, v| {
            if stream.is_ok() {
                stream = reply(r, v);
            }
        });
        stream?;
        if let Err(e) = done {
            reply(
                Reply::Error {
                    error: WireError::from(&e),
                },
                &[],
            )?;
        }
    }
    Ok(())
}

fn handle(
    models: &mut Models,
    req: Request,
    values: Vec<f32>,
    reply: &mut dyn FnMut(Reply, &[f32]),
) -> Result<(), FeaturesError> {
    match req {
        Request::Report => reply(
            Reply::Report {
                report: torch_report(),
            },
            &[],
        ),
        Request::Load {
            model,
            device,
            precision,
        } => {
            let key = (model.clone(), device.to_string(), precision.to_string());
            let slot = match models.by_key.get(&key) {
                Some(slot) => *slot,
                None => {
                    let e = embed::Embedder::load(&model, device, precision)?;
                    models.slots.push(e);
                    models.recent.push(embed::Recent::default());
                    let slot = models.slots.len() as u64 - 1;
                    models.by_key.insert(key, slot);
                    slot
                }
            };
            let e = &models.slots[slot as usize];
            reply(
                Reply::Loaded {
                    slot,
                    dim: e.dim(),
                    input: e.input_size(),
                    device: e.device(),
                    description: e.description.clone(),
                },
                &[],
            )
        }
        Request::EmbedPixels { slot, n } => {
            let e = model(&models.slots, slot)?;
            let rows = e.embed_pixels(&values, n)?;
            reply(Reply::Vectors { rows: rows.len() }, &rows.concat())
        }
        Request::EmbedItems {
            slot,
            items,
            batch,
            normalize,
        } => {
            let e = model(&models.slots, slot)?;
            let recent = &mut models.recent[slot as usize];
            let items: Vec<EmbedItem> = items
                .into_iter()
                .map(|(id, path)| EmbedItem { id, path })
                .collect();
            let opts = EmbedOptions { batch, normalize };
            let (failed, reused) =
                embed::embed_items(e, &items, opts, recent, |ids, vectors, count| {
                    reply(
                        Reply::Batch {
                            ids: ids.to_vec(),
                            count,
                        },
                        vectors,
                    );
                    Ok(())
                })?;
            reply(Reply::Done { failed, reused }, &[])
        }
        Request::Knn {
            dim,
            k,
            band,
            device,
        } => {
            let found = knn::neighbours_at_scale(&values, dim, k, band, device)?;
            let rows = found
                .into_iter()
                .map(|r| r.into_iter().map(|n| (n.index, n.cosine)).collect())
                .collect();
            reply(Reply::Neighbours { rows }, &[])
        }
    }
    Ok(())
}

fn model(slots: &[embed::Embedder], slot: u64) -> Result<&embed::Embedder, FeaturesError> {
    slots
        .get(slot as usize)
        .ok_or_else(|| FeaturesError::Torch(format!("no model in slot {slot}: load it first")))
}

fn torch_report() -> TorchReport {
    let cuda_available = tch::Cuda::is_available();
    TorchReport {
        linked: true,
        cuda_available,
        cuda_devices: if cuda_available {
            tch::Cuda::device_count()
        } else {
            0
        },
        cudnn_available: cuda_available && tch::Cuda::cudnn_is_available(),
        auto_device: match tch::Device::cuda_if_available() {
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimicit::features::{DeviceSpec, Precision};

    #[test]
    fn arguments() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(parse_args(&a("serve")), Some(("warn".into(), None)));
        assert_eq!(
            parse_args(&a("serve --threads 3 --log INFO")),
            Some(("info".into(), Some(3)))
        );
        assert_eq!(parse_args(&a("serve --threads x")), None);
        assert_eq!(parse_args(&a("serve --log")), None);
        assert_eq!(parse_args(&a("run")), None);
    }

    /// Runs `requests` through [`serve`] and returns the replies.
    fn exchange(requests: &[(Request, Vec<f32>)]) -> Vec<(Envelope, Vec<f32>)> {
        let mut wire = Vec::new();
        for (r, v) in requests {
            write_frame(&mut wire, r, v).unwrap();
        }
        let mut out = Vec::new();
        serve(wire.as_slice(), &mut out).unwrap();
        let mut r = out.as_slice();
        let mut replies = Vec::new();
        while let Some(f) = read_frame::<Envelope>(&mut r).unwrap() {
            replies.push(f);
        }
        replies
    }

    #[test]
    fn report_is_consistent_and_libtorch_runs() {
        let r = torch_report();
        assert!(r.linked);
        assert_eq!(r.cuda_available, r.cuda_devices > 0);
        assert_eq!(r.auto_device == "cpu", !r.cuda_available);
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 6.0);
    }

    #[test]
    fn a_failed_request_is_answered_and_the_next_one_served() {
        let replies = exchange(&[
            (
                Request::Load {
                    model: PathBuf::from("/no/such/model"),
                    device: DeviceSpec::Cpu,
                    precision: Precision::Fp32,
                },
                vec![],
            ),
            (Request::EmbedPixels { slot: 3, n: 1 }, vec![0.0; 12]),
            (
                Request::Knn {
                    dim: 2,
                    k: 1,
                    band: (-1.0, 1.0),
                    device: DeviceSpec::Cpu,
                },
                vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0],
            ),
            (Request::Report, vec![]),
        ]);
        assert_eq!(replies.len(), 4);
        match &replies[0].0.reply {
            Reply::Error { error } => {
                assert!(error.message.contains("no such model"), "{error:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&replies[1].0.reply, Reply::Error { error } if error.message.contains("slot 3"))
        );
        match &replies[2].0.reply {
            Reply::Neighbours { rows } => {
                let firsts: Vec<usize> = rows.iter().map(|r| r[0].0).collect();
                assert_eq!(firsts, vec![1, 0, 1]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&replies[3].0.reply, Reply::Report { report } if report.linked));
        assert!(replies.iter().all(|(e, _)| e.cpu_s > 0.0));
    }
}

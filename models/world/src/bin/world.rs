//! `world`: renders the default world's faces, trains its generator and classifiers, checks the quality gates and
//! draws sample sheets.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use subspace_world::{gates, meta, nets, render, sheet, train};
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
#[command(name = "world", about = "The default world of Subspace: renderer, generator, classifiers, gates")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Fit,
    Eval,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render N labelled faces: PNGs plus labels.csv and labels.json.
    Render {
        #[arg(long, default_value_t = 64)]
        count: u64,
        /// Image i uses renderer seed S + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the GAN generator on renders and save generator.pt / generator.json.
    TrainGenerator {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Wall-clock budget in minutes (training stops at the first of --minutes and --steps).
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Exact number of steps (for reproduction).
        #[arg(long)]
        steps: Option<u64>,
        #[arg(long, default_value_t = 64)]
        batch: i64,
        /// Adam learning rate of both networks.
        #[arg(long, default_value_t = 2e-4)]
        lr: f64,
        /// Let the learning rate fall linearly from --lr to this over the second half of the run (default: flat;
        /// a from-scratch run falling to 5e-5 lost hair-colour diversity, see docs/DEFAULT_WORLD.md).
        #[arg(long)]
        lr_final: Option<f64>,
        #[arg(long, default_value = "models/default")]
        out: PathBuf,
        /// Checkpoints and progress sheets (default target/world-work/gan-SEED).
        #[arg(long)]
        work: Option<PathBuf>,
        /// Continue from the checkpoint in the work folder (--minutes is then the extra time).
        #[arg(long)]
        resume: bool,
        /// Images the discriminator judges together (PacGAN packing).
        #[arg(long, default_value_t = 4)]
        pack: i64,
        /// With --resume: start a new discriminator instead of loading the checkpoint's.
        #[arg(long)]
        fresh_discriminator: bool,
        /// With --resume: restart the exported weight average from the current generator.
        #[arg(long)]
        reset_ema: bool,
        /// Device to train on: cpu, cuda, cuda:N (the exported module is traced on the CPU either way).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Threads rendering training batches (1 reproduces the CPU runs' data order; use several on a GPU).
        #[arg(long, default_value_t = 1)]
        render_threads: usize,
        /// Keep the weight average every N steps (a multiple of 250) as WORK/snapshots/g_ema-STEP.safetensors, to
        /// pick a stopping point by the gates (export one with export-generator).
        #[arg(long)]
        snapshot_every: Option<u64>,
    },
    /// Re-export generator.pt / generator.json from a training checkpoint (g_ema.safetensors).
    ExportGenerator {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        steps: u64,
        #[arg(long)]
        minutes: f64,
        #[arg(long, default_value = "models/default")]
        out: PathBuf,
    },
    /// Train a classifier on renders and save classifier-ROLE.pt / .json.
    TrainClassifier {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Training steps (default 700 for fit, 1000 for eval).
        #[arg(long)]
        steps: Option<u64>,
        /// Wall-clock cap in minutes.
        #[arg(long, default_value_t = 8.0)]
        minutes: f64,
        #[arg(long, default_value = "models/default")]
        out: PathBuf,
    },
    /// Measure the quality gates of the models in a folder.
    Gates {
        #[arg(long, default_value = "models/default")]
        models: PathBuf,
        /// Generated samples.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Fresh renders for the classifier accuracies.
        #[arg(long, default_value_t = 2_000)]
        renders: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the JSON report to this file.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Device for the models: cpu, cuda, cuda:N (codes drawn on a GPU differ from the CPU's for the same seed).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Write 8x8 sheets of renders and of generated faces.
    Sheet {
        #[arg(long, default_value = "models/default")]
        models: PathBuf,
        #[arg(long, default_value = "docs/images")]
        out: PathBuf,
        #[arg(long, default_value_t = 3)]
        seed: u64,
        #[arg(long, default_value_t = 2)]
        scale: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Render { count, seed, out } => render_cmd(count, seed, &out),
        Cmd::TrainGenerator {
            seed,
            minutes,
            steps,
            batch,
            lr,
            lr_final,
            out,
            work,
            resume,
            pack,
            fresh_discriminator,
            reset_ema,
            device,
            render_threads,
            snapshot_every,
        } => {
            let mut cfg = train::GanConfig::new(seed, minutes, &out);
            cfg.steps = steps;
            cfg.lr = lr;
            cfg.lr_final = lr_final;
            cfg.batch = batch;
            cfg.resume = resume;
            cfg.pack = pack;
            cfg.fresh_discriminator = fresh_discriminator;
            cfg.reset_ema = reset_ema;
            cfg.device = parse_device(&device)?;
            cfg.render_threads = render_threads;
            cfg.snapshot_every = snapshot_every;
            if let Some(w) = work {
                cfg.work = w;
            }
            let r = train::train_generator(&cfg)?;
            println!("done: {} steps, {:.1} min, d_loss {:.4}, g_loss {:.4}", r.steps, r.minutes, r.d_loss, r.g_loss);
            Ok(())
        }
        Cmd::ExportGenerator { checkpoint, seed, steps, minutes, out } => {
            train::export_generator_checkpoint(&checkpoint, &out, seed, steps, minutes, 4096, None)
        }
        Cmd::TrainClassifier { role, seed, steps, minutes, out } => {
            let role = match role {
                RoleArg::Fit => nets::Role::Fit,
                RoleArg::Eval => nets::Role::Eval,
            };
            let mut cfg = train::ClassifierConfig::new(role, seed, &out);
            cfg.minutes = minutes;
            if let Some(s) = steps {
                cfg.steps = s;
            }
            train::train_classifier(&cfg)?;
            Ok(())
        }
        Cmd::Gates { models, count, renders, seed, json, save, device } => {
            let m = gates::Models::load_on(&models, parse_device(&device)?)?;
            let r = gates::measure(&m, count, renders, seed)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", gates::table(&r));
            }
            if let Some(p) = save {
                meta::write_json(&p, &r)?;
            }
            if !r.pass {
                std::process::exit(2);
            }
            Ok(())
        }
        Cmd::Sheet { models, out, seed, scale } => {
            let tiles: Vec<Vec<u8>> = (0..64).map(|i| render::render(seed * 1000 + i).1.to_vec()).collect();
            let p = out.join("renders.png");
            meta::write_atomic(&p, &sheet::png_bytes(&sheet::grid(&tiles, 8, scale))?)?;
            println!("wrote {}", p.display());
            let m = gates::Models::load(&models)?;
            tch::manual_seed(seed as i64);
            let z = Tensor::randn([64, nets::LATENT_DIM], (Kind::Float, Device::Cpu));
            let tiles = nets::unit_to_bytes(&m.generate_unit(&z)?);
            let p = out.join("generated.png");
            meta::write_atomic(&p, &sheet::png_bytes(&sheet::grid(&tiles, 8, scale))?)?;
            println!("wrote {}", p.display());
            Ok(())
        }
    }
}

/// `cpu`, `cuda` or `cuda:N`; a CUDA device must be present.
fn parse_device(s: &str) -> Result<Device> {
    let d = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Device::Cuda(n),
            None => anyhow::bail!("--device {s:?}: expected cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = d {
        let count = tch::Cuda::device_count() as usize;
        anyhow::ensure!(n < count, "--device {s}: this machine has {count} CUDA device(s)");
    }
    Ok(d)
}

fn render_cmd(count: u64, seed: u64, out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut csv = String::from("file,seed,hair,smile,bangs,glasses,skin\n");
    let mut rows = Vec::new();
    for i in 0..count {
        let s = seed.wrapping_add(i);
        let (a, img) = render::render(s);
        let file = format!("face-{i:06}.png");
        meta::write_atomic(&out.join(&file), &sheet::tile_png(&img)?)?;
        let n = a.class_names();
        csv += &format!("{file},{s},{},{},{},{},{}\n", n[0], n[1], n[2], n[3], n[4]);
        rows.push(serde_json::json!({
            "file": file, "seed": s, "hair": n[0], "smile": n[1], "bangs": n[2], "glasses": n[3], "skin": n[4],
            "class_vector": a.to_class_vector().to_vec(),
        }));
    }
    meta::write_atomic(&out.join("labels.csv"), csv.as_bytes())?;
    let doc = serde_json::json!({ "groups": meta::schema_groups(), "images": rows });
    meta::write_json(&out.join("labels.json"), &doc)?;
    println!("wrote {count} renders, labels.csv and labels.json to {}", out.display());
    Ok(())
}

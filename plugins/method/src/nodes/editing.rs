//! AttributeEdit: moves first codes toward components of the fitted mixture.

use crate::edit::{self, Mode};
use crate::gauss::Gaussians;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use subspace_sdk::context::randn;
use subspace_sdk::edits::{parse_targets, EditTarget};
use subspace_sdk::kinds;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;

subspace_sdk::choice! {
    /// The control vector zs an edit moves toward.
    pub enum ControlVector { Sample = "sample", Mean = "mean" }
}

subspace_sdk::choice! {
    /// How a region edit reaches each ratio.
    pub enum RegionPath {
        /// The line for targets whose groups all have two classes, per-ratio solves otherwise.
        Auto = "auto",
        /// Each ratio solved from z.
        Solve = "solve",
        /// The largest ratio (at least 1) solved once; each ratio lies on the straight line from z to it.
        Line = "line",
    }
}

pub(crate) struct AttributeEdit {
    codes: Input<Latents>,
    mixture: Input<kinds::Mixture>,
    target: Param<String>,
    ratio: Param<f64>,
    steps: Param<i64>,
    mode: Param<Mode>,
    zs: Param<ControlVector>,
    hold: Param<f64>,
    path: Param<RegionPath>,
    spread: Param<f64>,
    seed: Param<i64>,
    edited: Output<Latents>,
    layout: Output<EditLayout>,
}

impl Declared for AttributeEdit {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.attribute_edit",
        version: "2.1.0",
        name: "AttributeEdit",
        category: "Method: Editing",
        doc: "Edits first codes toward a mixture component: zs drawn from it (sampled or its mean), \
              z' = (1 - a) z + a zs (lerp, the patent's edit), spherical (slerp), z + a (zs - centre of z's class) \
              (shift), or the least movement that makes the component likely while holding the other groups \
              (region). Several classes joined by + are edited at once (toward the product of their components).",
    };

    fn declare(d: &mut Declare) -> Self {
        AttributeEdit {
            codes: d.input("codes", "first codes to edit, N x D"),
            mixture: d.input("mixture", "the fitted mixture"),
            target: d.text(
                "target",
                "all",
                "all, or comma-separated classes (group.class), + joins classes edited at once",
            ),
            ratio: d.float("ratio", 1.0, 0.0..=4.0, "interpolation ratio a (the last column when steps > 1)"),
            steps: d.int("steps", 1, 1..=64, "columns of ratios from 0 to ratio"),
            mode: d.choice(
                "mode",
                Mode::Lerp,
                "how z moves: lerp (the patent's), slerp, shift by the class difference, or region (least movement \
                 that makes the target likely, other groups held)",
            ),
            zs: d.choice("zs", ControlVector::Sample, "control vector: a sample of the component or its mean"),
            hold: d.float(
                "hold",
                edit::REGION_HOLD,
                0.0..=1000.0,
                "region mode: weight of keeping the other groups' component posteriors against moving less",
            ),
            path: d.choice(
                "path",
                RegionPath::Auto,
                "region mode: solve each ratio from z (least movement for that ratio's target log-odds), or solve \
                 the largest ratio (at least 1) once and move along the straight line to it (continuous and monotone \
                 in a); auto: the line for two-class \
                 groups, solve otherwise",
            ),
            spread: d.float(
                "spread",
                1.0,
                0.0..=1.0,
                "sampled zs: scale of the deviation from the component mean (1: the component itself; smaller: \
                 truncated toward its mean)",
            ),
            seed: d.int("seed", 0, 0..=i64::MAX, "seed for sampled control vectors"),
            edited: d.output("codes", "second codes, ordered target, sample, ratio"),
            layout: d.output("layout", "targets, samples, steps, ratios (for grids and evaluation)"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let g = Gaussians::from_bundle(&io.read(&self.mixture)?.0, self.mixture.name())?.to_device(ctx.device());
        let z = io.read(&self.codes)?.0.to_kind(Kind::Float).to_device(ctx.device());
        if z.size()[1] != g.dim() {
            let (dz, dg) = (z.size()[1], g.dim());
            return Err(NodeError::input(self.codes.name(), format!("codes have dimension {dz}, the mixture {dg}")));
        }
        let targets =
            parse_targets(&io.read(&self.target)?, &g.schema).map_err(|m| NodeError::param(self.target.name(), m))?;
        let mode = io.read(&self.mode)?;
        let steps = io.read(&self.steps)?;
        let ratio = io.read(&self.ratio)?;
        let ratios: Vec<f64> =
            if steps == 1 { vec![ratio] } else { (0..steps).map(|i| ratio * i as f64 / (steps - 1) as f64).collect() };
        let n = z.size()[0];
        let mut rng = ChaCha8Rng::seed_from_u64(io.read(&self.seed)? as u64);
        let _guard = tch::no_grad_guard();
        let codes = if let Some(mode) = mode.closed_form() {
            let sample = io.read(&self.zs)? == ControlVector::Sample;
            let spread = io.read(&self.spread)?;
            let d = g.dim();
            let mut out = Vec::new();
            for (t, target) in targets.iter().enumerate() {
                ctx.check_cancelled()?;
                let set = &target.columns;
                let noise = |rng: &mut ChaCha8Rng| sample.then(|| randn(rng, &[n, d]).to_device(ctx.device()) * spread);
                let zs = edit::control_vectors(&g, set, n, noise(&mut rng).as_ref());
                let per_class: Vec<Tensor> =
                    set.iter().map(|&k| edit::control_vectors(&g, &[k], n, noise(&mut rng).as_ref())).collect();
                let rows: Vec<Tensor> =
                    ratios.iter().map(|&a| edit::apply(&g, &z, set, a, mode, &zs, &per_class)).collect();
                // n x steps x D: sample-major within the target.
                out.push(Tensor::stack(&rows, 1).reshape([n * steps, d]));
                ctx.progress(t as u64 + 1, targets.len() as u64, "editing");
            }
            Tensor::cat(&out, 0)
        } else {
            let edited = self.region(io, &g, &z, &targets, &ratios)?;
            ctx.progress(1, 1, "editing");
            edited
        };
        let names = targets.into_iter().map(|t| t.name).collect();
        io.write(&self.edited, Latents(codes));
        io.write(&self.layout, EditLayout { targets: names, samples: n, steps, ratios });
        Ok(())
    }
}

impl AttributeEdit {
    /// Region edits of every target, sample and ratio, ordered target, sample, ratio.
    fn region(
        &self,
        io: &NodeIo<'_>,
        g: &Gaussians,
        z: &Tensor,
        targets: &[EditTarget],
        ratios: &[f64],
    ) -> NodeResult<Tensor> {
        let hold = io.read(&self.hold)?;
        let path = io.read(&self.path)?;
        let (n, d, steps) = (z.size()[0], g.dim(), ratios.len() as i64);
        let cols = g.schema.columns();
        // Auto: the straight line for targets in two-class groups, where it leaks less at the same movement, and
        // per-ratio solves where a target is a class among three or more (a middle class is a slab that a
        // straight line reaches late); docs/EVALUATION.md has the measurements.
        let on_line = |set: &[usize]| match path {
            RegionPath::Line => true,
            RegionPath::Solve => false,
            RegionPath::Auto => set.iter().all(|&c| g.schema.groups[cols[c].0].classes.len() == 2),
        };
        let (line_t, solve_t): (Vec<usize>, Vec<usize>) =
            (0..targets.len()).partition(|&t| on_line(&targets[t].columns));
        let per_target = n * steps; // rows per target, ordered sample, ratio
        let mut blocks: Vec<Option<Tensor>> = (0..targets.len()).map(|_| None).collect();
        let repeat = |ts: &[usize], times: i64| -> Vec<Vec<usize>> {
            ts.iter().flat_map(|&t| std::iter::repeat_n(targets[t].columns.clone(), times as usize)).collect()
        };
        if !solve_t.is_empty() {
            // One batched optimisation for every target, sample and ratio.
            let sets = repeat(&solve_t, per_target);
            let row_ratios: Vec<f64> =
                solve_t.iter().flat_map(|_| (0..n).flat_map(|_| ratios.iter().copied())).collect();
            let rows = z.repeat_interleave_self_int(steps, 0, None).repeat([solve_t.len() as i64, 1]);
            let x = edit::region(g, &rows, &sets, &row_ratios, hold, 150);
            for (i, &t) in solve_t.iter().enumerate() {
                blocks[t] = Some(x.narrow(0, i as i64 * per_target, per_target));
            }
        }
        if !line_t.is_empty() {
            // Solved once, at the largest ratio (at least 1), for each target and sample; each ratio then lies on
            // the straight line from z to that point, so the columns of a grid change continuously with a and a
            // ratio above 1 is solved rather than extrapolated past the target region.
            let end = ratios.iter().copied().fold(1.0, f64::max);
            let sets = repeat(&line_t, n);
            let zz = z.repeat([line_t.len() as i64, 1]);
            let x1 = edit::region(g, &zz, &sets, &vec![end; sets.len()], hold, 150);
            let a: Vec<f32> = ratios.iter().map(|&r| (r / end) as f32).collect();
            let a = Tensor::from_slice(&a).to_device(z.device()).view([1, steps, 1]);
            let x = (zz.unsqueeze(1) + a * (x1 - &zz).unsqueeze(1)).reshape([-1, d]);
            for (i, &t) in line_t.iter().enumerate() {
                blocks[t] = Some(x.narrow(0, i as i64 * per_target, per_target));
            }
        }
        let blocks: Vec<Tensor> = blocks.into_iter().flatten().collect();
        Ok(Tensor::cat(&blocks, 0))
    }
}

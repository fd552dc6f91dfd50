//! Editing along directions: InterFaceGAN's linear edit, plain or conditional.

use crate::directions::Directions;
use crate::linear::{self, EditMode, EditPart};
use subspace_sdk::edits::parse_targets;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;

/// The edit parts of one target: for each of its classes, the normal, offset and direction (the normal, or for
/// a conditional edit the normal projected off every normal of the groups the target does not edit, renormalised).
///
/// # Errors
/// A conditional edit whose normal lies in the span of the other groups' normals (nothing left to move along).
pub fn edit_parts(dirs: &Directions, set: &[usize], conditional: bool) -> Result<Vec<EditPart>, String> {
    let cols = dirs.schema.columns();
    let names = dirs.schema.class_names();
    let groups: Vec<usize> = set.iter().map(|&c| cols[c].0).collect();
    let normals = dirs.normals.to_kind(Kind::Double);
    let others: Vec<i64> = (0..cols.len()).filter(|&j| !groups.contains(&cols[j].0)).map(|j| j as i64).collect();
    let basis = Tensor::from_slice(&others).to_device(normals.device());
    let other_normals = normals.index_select(0, &basis);
    let mut parts = Vec::new();
    for &c in set {
        let n = normals.get(c as i64);
        let direction = if conditional && !others.is_empty() {
            let p = linear::project_out(&n, &other_normals);
            let norm = p.norm().double_value(&[]);
            if norm < 1e-6 {
                return Err(format!(
                    "the normal of {} lies in the span of the other groups' normals: a conditional edit leaves \
                     nothing to move along",
                    names[c]
                ));
            }
            p / norm
        } else {
            n.shallow_clone()
        };
        parts.push(EditPart { normal: n, offset: dirs.offsets.double_value(&[c as i64]), direction });
    }
    Ok(parts)
}

/// Moves codes along directions and says how the batch is laid out.
pub struct DirectionEdit {
    codes: Input<Latents>,
    directions: Input<Directions>,
    target: Param<String>,
    distance: Param<f64>,
    steps: Param<i64>,
    conditional: Param<bool>,
    mode: Param<EditMode>,
    edited: Output<Latents>,
    layout: Output<EditLayout>,
}

impl Declared for DirectionEdit {
    // 2.0.0: `layout` is a typed edit.layout, no longer JSON text.
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.direction_edit",
        version: "2.0.0",
        name: "Linear edit",
        category: "Baselines: Editing",
        doc: "Moves codes along directions (InterFaceGAN's edit): shift by d along the unit normal, or to signed \
              distance d from the boundary; conditional edits first project the normal off every other attribute \
              group's normals. Outputs codes ordered target, sample, step and a layout Edit score reads.",
    };

    fn declare(d: &mut Declare) -> Self {
        DirectionEdit {
            codes: d.input("codes", "codes to edit, N x D"),
            directions: d.input("directions", "directions from a baseline node or an import"),
            target: d.text(
                "target",
                "all",
                "all, or comma-separated classes (group.class); + joins classes \
                                             edited together",
            ),
            distance: d.float(
                "distance",
                3.0,
                -1000.0..=1000.0,
                "final distance d along the normal (shift) or \
                                                                  signed distance to reach (to_boundary)",
            ),
            steps: d.int(
                "steps",
                6,
                1..=64,
                "distances linspace(0, distance, steps); distance 0 is the unedited \
                                              code in both modes",
            ),
            conditional: d.bool(
                "conditional",
                false,
                "project each target normal off all other attribute groups' \
                                                       normals first (InterFaceGAN's conditional edit)",
            ),
            mode: d.choice(
                "mode",
                EditMode::Shift,
                "shift: z + d n; to_boundary: move along n until n . z + \
                                                     offset = d",
            ),
            edited: d.output("codes", "edited codes, ordered target, sample, step"),
            layout: d.output("layout", "targets, samples, steps and ratios = distances, as AttributeEdit writes"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let z = io.read(&self.codes)?.0.to_kind(Kind::Float).to_device(ctx.device());
        let dirs = io.read(&self.directions)?.to_device(ctx.device());
        let (n, d) = (z.size()[0], z.size()[1]);
        if d != dirs.dim() {
            let why = format!("codes have dimension {d}, but the directions have dimension {}", dirs.dim());
            return Err(NodeError::input(self.codes.name(), why));
        }
        let at = self.target.name();
        let targets = parse_targets(&io.read(&self.target)?, &dirs.schema).map_err(|e| NodeError::param(at, e))?;
        let mode = io.read(&self.mode)?;
        let conditional = io.read(&self.conditional)?;
        let dists = linear::distances(io.read(&self.distance)?, io.read(&self.steps)?);
        let _guard = tch::no_grad_guard();
        let mut out = Vec::new();
        for (t, target) in targets.iter().enumerate() {
            ctx.check_cancelled()?;
            let parts = edit_parts(&dirs, &target.columns, conditional).map_err(|e| NodeError::param(at, e))?;
            let edited = linear::linear_edit(&z, &parts, &dists, mode)
                .map_err(|e| NodeError::internal(format!("editing {}: {e}", target.name)))?;
            out.push(edited.reshape([n * dists.len() as i64, d]));
            ctx.progress(t as u64 + 1, targets.len() as u64, "editing");
        }
        let (names, steps) = (targets.into_iter().map(|t| t.name).collect(), dists.len() as i64);
        let layout = EditLayout { targets: names, samples: n, steps, ratios: dists };
        io.write(&self.edited, Latents(Tensor::cat(&out, 0)));
        io.write(&self.layout, layout);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directions::make_schema;

    fn schema(groups: &[(&str, &[&str])]) -> LabelSchema {
        make_schema(groups.iter().map(|(g, c)| (g.to_string(), c.iter().map(|s| s.to_string()).collect())).collect())
    }

    /// The SDK's one target parser gives the canonical names and columns the edits and their layout use.
    #[test]
    fn targets_parse_like_attribute_edit() {
        let s = schema(&[("hair", &["black", "red"]), ("smile", &["yes", "no"]), ("glasses", &["yes"])]);
        let t = parse_targets("all", &s).unwrap();
        assert_eq!(t.len(), 5);
        let t = parse_targets("red, smile.yes+glasses.yes", &s).unwrap();
        let got: Vec<(String, Vec<usize>)> = t.into_iter().map(|t| (t.name, t.columns)).collect();
        assert_eq!(got, vec![("hair.red".to_string(), vec![1]), ("smile.yes+glasses.yes".to_string(), vec![2, 4])]);
        let e = parse_targets("hair.blond", &s).unwrap_err();
        assert!(e.contains("unknown class 'hair.blond'") && e.contains("hair.red"), "{e}");
        assert!(parse_targets("hair.black+hair.red", &s).is_err());
        // A bare name shared by two groups is ambiguous.
        assert!(parse_targets("yes", &s).is_err());
    }

    /// The conditional edit of hair.red moves along a direction orthogonal to every other group's normal, and
    /// leaves those groups' signed distances unchanged.
    #[test]
    fn conditional_edit_leaves_other_groups_alone() {
        let groups: [(&str, &[&str]); 4] =
            [("hair", &["black", "red"]), ("smile", &["yes", "no"]), ("glasses", &["yes", "no"]), ("age", &["young"])];
        let schema = schema(&groups);
        let normals = Tensor::randn([7, 20], (Kind::Double, Device::Cpu));
        let offsets = Tensor::zeros([7], (Kind::Float, Device::Cpu));
        let dirs = Directions::new(&normals, &offsets, schema, "test", serde_json::json!({})).unwrap();
        let targets = parse_targets("hair.red,smile.yes+glasses.no", &dirs.schema).unwrap();
        let z = Tensor::randn([30, 20], (Kind::Float, Device::Cpu));
        let n = dirs.normals.to_kind(Kind::Double);
        for target in &targets {
            let set = &target.columns;
            let parts = edit_parts(&dirs, set, true).unwrap();
            let edited = linear::linear_edit(&z, &parts, &[0.0, 3.0], EditMode::Shift).unwrap();
            let delta = (edited.select(1, 1) - edited.select(1, 0)).to_kind(Kind::Double);
            let groups: Vec<usize> = set.iter().map(|&c| dirs.schema.columns()[c].0).collect();
            for j in 0..7 {
                if groups.contains(&dirs.schema.columns()[j].0) {
                    continue;
                }
                let moved = delta.mv(&n.get(j as i64)).abs().max().double_value(&[]);
                assert!(moved < 1e-4, "class {j} moved by {moved}");
            }
        }
        // Without conditioning the other groups do move.
        let parts = edit_parts(&dirs, &targets[0].columns, false).unwrap();
        let edited = linear::linear_edit(&z, &parts, &[3.0], EditMode::Shift).unwrap();
        let delta = (edited.select(1, 0) - &z).to_kind(Kind::Double);
        assert!(delta.mv(&n.get(2)).abs().max().double_value(&[]) > 1e-3);
    }
}

//! An outside plugin: one node showing where an edit changed the pictures, to see at a glance whether it touched
//! only what it should. It depends on `subspace-sdk` only and is loaded with `subspace --plugins DIR`.

use subspace_sdk::prelude::*;

struct ImageDifference {
    before: Input<Images>,
    after: Input<Images>,
    gain: Param<f64>,
    heat: Output<Images>,
    rms: Output<f64>,
}

impl Declared for ImageDifference {
    const INFO: NodeInfo = NodeInfo {
        id: "acme.image_difference",
        version: "1.0.0",
        name: "Image difference",
        category: "Images: Compare",
        doc: "Per-pixel change between two picture batches as red heat maps (brighter: more change), and the RMS \
              change over all pixels.",
    };

    fn declare(d: &mut Declare) -> Self {
        ImageDifference {
            before: d.input("before", "pictures before the edit"),
            after: d.input("after", "the same pictures after it (same shape)"),
            gain: d.float("gain", 4.0, 0.1..=100.0, "multiplies the change before it is shown"),
            heat: d.output("heat", "N x 3 x H x W heat maps in [0, 1]"),
            rms: d.output("rms", "root-mean-square change, in [0, 1] pixel units"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let Images(before) = io.read(&self.before)?;
        let Images(after) = io.read(&self.after)?;
        if before.size() != after.size() {
            let message = format!("shape {:?} differs from 'before' {:?}", after.size(), before.size());
            return Err(NodeError::input(self.after.name(), message));
        }
        let diff = (after.to_kind(Kind::Float) - before.to_kind(Kind::Float).to_device(after.device())).abs();
        let rms = diff.square().mean(Kind::Double).sqrt().double_value(&[]);
        // Channel-mean change, shown in red over a dark background.
        let change = (diff.mean_dim([1i64].as_slice(), true, Kind::Float) * io.read(&self.gain)?).clamp(0.0, 1.0);
        let heat = Tensor::cat(&[change.shallow_clone(), &change * 0.15, &change * 0.15], 1);
        ctx.log(&format!("RMS change {rms:.4}"));
        io.write(&self.heat, Images(heat));
        io.write(&self.rms, rms);
        Ok(())
    }
}

subspace_sdk::export_plugin!(ImageDifference);

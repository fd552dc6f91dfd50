//! Test nodes: small, observable behaviours the host's tests assert on (laziness, caching, parallelism, failure
//! isolation, panics, zero-copy tensors, cancellation, the disk cache). Not installed with the product plugins.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subspace_sdk::abi_stable::sabi_trait::TD_Opaque;
use subspace_sdk::abi_stable::std_types::{RArc, ROption, RResult, RStr, RString};
use subspace_sdk::prelude::*;
use subspace_sdk::{rand_chacha, serde_json, Model, ModelRef, TensorRef};

const CAT: &str = "Test";

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

const fn info(id: &'static str, name: &'static str, doc: &'static str) -> NodeInfo {
    NodeInfo { id, version: "1.0.0", name, category: CAT, doc }
}

struct Constant {
    value: Param<f64>,
    out: Output<f64>,
}
impl Declared for Constant {
    const INFO: NodeInfo = info("test.constant", "Constant", "Outputs its parameter.");
    fn declare(d: &mut Declare) -> Self {
        Constant { value: d.float("value", 0.0, -1e9..=1e9, "the number"), out: d.output("value", "the number") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = io.read(&self.value)?;
        io.write(&self.out, v);
        Ok(())
    }
}

struct Add {
    augend: Input<f64>,
    addend: Input<f64>,
    sum: Output<f64>,
}
impl Declared for Add {
    const INFO: NodeInfo = NodeInfo { version: "1.2.0", ..info("test.add", "Add", "augend + addend") };
    fn declare(d: &mut Declare) -> Self {
        Add {
            augend: d.input("augend", "left"),
            addend: d.input("addend", "right"),
            sum: d.output("sum", "augend + addend"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let s = io.read(&self.augend)? + io.read(&self.addend)?;
        io.write(&self.sum, s);
        Ok(())
    }
}

struct Scale {
    value: Input<f64>,
    factor: Param<f64>,
    out: Output<f64>,
}
impl Declared for Scale {
    const INFO: NodeInfo = info("test.scale", "Scale", "value x factor");
    fn declare(d: &mut Declare) -> Self {
        Scale {
            value: d.input("value", "input"),
            factor: d.float("factor", 1.0, -1e6..=1e6, "multiplier"),
            out: d.output("value", "value x factor"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = io.read(&self.value)? * io.read(&self.factor)?;
        io.write(&self.out, v);
        Ok(())
    }
}

struct Sleep {
    value: Optional<f64>,
    ms: Param<i64>,
    out: Output<f64>,
    started: Output<f64>,
    finished: Output<f64>,
}
impl Declared for Sleep {
    const INFO: NodeInfo = info("test.sleep", "Sleep", "Waits, then passes its input on; reports when it ran.");
    fn declare(d: &mut Declare) -> Self {
        Sleep {
            value: d.optional("value", "passed through"),
            ms: d.int("ms", 100, 0..=60_000, "how long"),
            out: d.output("value", "the input, or 0"),
            started: d.output("started", "UNIX time it started"),
            finished: d.output("finished", "UNIX time it finished"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let started = now();
        let ms = io.read(&self.ms)? as u64;
        for step in 0..10 {
            ctx.progress(step, 10, "sleeping");
            std::thread::sleep(Duration::from_millis(ms / 10));
        }
        let v = io.read(&self.value)?.unwrap_or(0.0);
        io.write(&self.out, v);
        io.write(&self.started, started);
        io.write(&self.finished, now());
        Ok(())
    }
}

struct Fail {
    value: Optional<f64>,
    _out: Output<f64>,
}
impl Declared for Fail {
    const INFO: NodeInfo = info("test.fail", "Fail", "Always fails with an error naming its input.");
    fn declare(d: &mut Declare) -> Self {
        Fail { value: d.optional("value", "ignored"), _out: d.output("value", "never produced") }
    }
    fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        Err(NodeError::input(self.value.name(), "this node always fails"))
    }
}

struct Panic {
    _out: Output<f64>,
}
impl Declared for Panic {
    const INFO: NodeInfo = info("test.panic", "Panic", "Panics inside the plugin.");
    fn declare(d: &mut Declare) -> Self {
        Panic { _out: d.output("value", "never produced") }
    }
    fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        panic!("deliberate panic in test.panic")
    }
}

static COUNT: AtomicI64 = AtomicI64::new(0);

struct Count {
    _value: Optional<f64>,
    _tag: Param<String>,
    count: Output<i64>,
}
impl Declared for Count {
    const INFO: NodeInfo = info("test.count", "Count", "Counts its executions in this process.");
    fn declare(d: &mut Declare) -> Self {
        Count {
            _value: d.optional("value", "anything"),
            _tag: d.text("tag", "", "changes the cache key"),
            count: d.output("count", "executions so far, this one included"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        io.write(&self.count, COUNT.fetch_add(1, Ordering::SeqCst) + 1);
        Ok(())
    }
}

struct Clock {
    out: Output<f64>,
}
impl Declared for Clock {
    const INFO: NodeInfo = info("test.clock", "Clock", "The current time: volatile, never cached across runs.");
    fn declare(d: &mut Declare) -> Self {
        d.volatile();
        Clock { out: d.output("value", "UNIX time") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        io.write(&self.out, now());
        Ok(())
    }
}

struct TensorSource {
    n: Param<i64>,
    random: Param<bool>,
    out: Output<Tensor>,
}
impl Declared for TensorSource {
    const INFO: NodeInfo = info("test.tensor", "Tensor", "A float tensor 0..n, or seeded normals.");
    fn declare(d: &mut Declare) -> Self {
        TensorSource {
            n: d.int("n", 8, 1..=1 << 24, "length"),
            random: d.bool("random", false, "seeded normals instead of 0..n"),
            out: d.output("tensor", "the tensor"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let n = io.read(&self.n)?;
        let t = if io.read(&self.random)? {
            subspace_sdk::context::randn(&mut ctx.rng(), &[n])
        } else {
            Tensor::arange(n, (Kind::Float, ctx.device()))
        };
        io.write(&self.out, t);
        Ok(())
    }
}

struct TensorPass {
    input: Input<Tensor>,
    out: Output<Tensor>,
}
impl Declared for TensorPass {
    const INFO: NodeInfo = info("test.pass", "Pass", "Passes a tensor on unchanged.");
    fn declare(d: &mut Declare) -> Self {
        TensorPass { input: d.input("tensor", "in"), out: d.output("tensor", "the same tensor") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = io.read(&self.input)?;
        io.write(&self.out, t);
        Ok(())
    }
}

struct TensorAddress {
    input: Input<Tensor>,
    address: Output<i64>,
    sum: Output<f64>,
}
impl Declared for TensorAddress {
    const INFO: NodeInfo = info("test.address", "Address", "The address of a tensor's data (to prove no copy).");
    fn declare(d: &mut Declare) -> Self {
        TensorAddress {
            input: d.input("tensor", "in"),
            address: d.output("address", "data pointer"),
            sum: d.output("sum", "sum of elements"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = io.read(&self.input)?;
        io.write(&self.address, t.data_ptr() as i64);
        io.write(&self.sum, t.sum(Kind::Double).double_value(&[]));
        Ok(())
    }
}

struct WaitForCancel {
    out: Output<f64>,
}
impl Declared for WaitForCancel {
    const INFO: NodeInfo =
        info("test.wait_for_cancel", "Wait for cancel", "Loops until the run is cancelled (at most 10 s).");
    fn declare(d: &mut Declare) -> Self {
        WaitForCancel { out: d.output("value", "never produced when cancelled") }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            ctx.check_cancelled()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        io.write(&self.out, 0.0);
        Ok(())
    }
}

struct WrongOutput {
    out: Output<f64>,
}
impl Declared for WrongOutput {
    const INFO: NodeInfo = info("test.wrong_output", "Wrong output", "Declares a float output but produces text.");
    fn declare(d: &mut Declare) -> Self {
        WrongOutput { out: d.output("value", "declared float") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        // The untyped writer, on purpose: the host must catch a broken output contract.
        io.output(self.out.name(), Value::Text("not a float".into()));
        Ok(())
    }
}

subspace_sdk::choice! {
    /// The test choice.
    enum Letter { A = "a", B = "b" }
}

struct Choose {
    mode: Param<Letter>,
    _steps: Param<i64>,
    out: Output<String>,
}
impl Declared for Choose {
    const INFO: NodeInfo = info("test.choose", "Choose", "Outputs its choice parameter.");
    fn declare(d: &mut Declare) -> Self {
        Choose {
            mode: d.choice("mode", Letter::A, "a or b"),
            _steps: d.int("steps", 1, 1..=10, "an int in [1, 10]"),
            out: d.output("mode", "the choice"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let m = io.read(&self.mode)?;
        io.write(&self.out, m.to_string());
        Ok(())
    }
}

struct Codes {
    n: Param<i64>,
    dim: Param<i64>,
    nan: Param<bool>,
    out: Output<Latents>,
}
impl Declared for Codes {
    const INFO: NodeInfo =
        info("test.latents", "Latents", "Seeded normal codes, optionally with a NaN in the first row.");
    fn declare(d: &mut Declare) -> Self {
        Codes {
            n: d.int("n", 4, 1..=1 << 20, "codes"),
            dim: d.int("dim", 8, 1..=4096, "dimension"),
            nan: d.bool("nan", false, "put a NaN in the first code"),
            out: d.output("codes", "N x D codes"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let z = subspace_sdk::context::randn(&mut ctx.rng(), &[io.read(&self.n)?, io.read(&self.dim)?]);
        if io.read(&self.nan)? {
            let _ = z.get(0).get(0).fill_(f64::NAN);
        }
        io.write(&self.out, Latents(z));
        Ok(())
    }
}

/// Every kind of storable value, from its parameters and seed: what the disk cache must give back exactly.
struct Store {
    value: Optional<f64>,
    n: Param<i64>,
    _tag: Param<String>,
    _file: Param<String>,
    float: Output<f64>,
    int: Output<i64>,
    flag: Output<bool>,
    text: Output<String>,
    tensor: Output<Tensor>,
    codes: Output<Latents>,
    images: Output<Images>,
    labels: Output<Labels>,
    fit: Output<Gaussians>,
}
impl Declared for Store {
    const INFO: NodeInfo = info("test.store", "Store", "Cacheable: one output of every storable kind.");
    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        Store {
            value: d.optional("value", "added to the float output"),
            n: d.int("n", 4, 1..=1 << 24, "rows"),
            _tag: d.text("tag", "", "changes the cache key"),
            _file: d.path("file", "", "not read; the disk cache keys on the size and time of the file it names"),
            float: d.output("float", "value + 0.1"),
            int: d.output("int", "n"),
            flag: d.output("flag", "n is even"),
            text: d.output("text", "a JSON document"),
            tensor: d.output("tensor", "n seeded normals"),
            codes: d.output("codes", "n x 3 seeded normals"),
            images: d.output("images", "n x 3 x 2 x 2 in [0, 1]"),
            labels: d.output("labels", "n x 3 probabilities, two groups"),
            fit: d.output("fit", "a bundle with a float and an int tensor"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let n = io.read(&self.n)?;
        let mut rng = ctx.rng();
        let normal = |rng: &mut rand_chacha::ChaCha8Rng, shape: &[i64]| subspace_sdk::context::randn(rng, shape);
        io.write(&self.float, io.read(&self.value)?.unwrap_or(0.0) + 0.1);
        io.write(&self.int, n);
        io.write(&self.flag, n % 2 == 0);
        io.write(&self.text, serde_json::json!({"n": n, "note": "ü"}).to_string());
        io.write(&self.tensor, normal(&mut rng, &[n]));
        io.write(&self.codes, Latents(normal(&mut rng, &[n, 3])));
        io.write(&self.images, Images(normal(&mut rng, &[n, 3, 2, 2]).sigmoid()));
        let schema: LabelSchema = serde_json::from_value(serde_json::json!({"groups": [
            {"name": "hair", "classes": ["black", "red"]}, {"name": "smile", "classes": ["yes"]}]}))
        .map_err(|e| NodeError::internal(e.to_string()))?;
        io.write(&self.labels, Labels { probs: normal(&mut rng, &[n, 3]).sigmoid().into(), schema });
        let meta = serde_json::json!({"rank": 1, "classes": ["a", "b"]});
        let idx = Tensor::arange(n, (Kind::Int64, Device::Cpu));
        let fit = Bundle::new(port::GAUSSIANS, &meta).with("mu", normal(&mut rng, &[2, 3])).with("idx", idx);
        io.write(&self.fit, Gaussians(fit));
        Ok(())
    }
}

/// A model that multiplies by its scale; its `info` says which load of this process made it.
#[derive(Debug, Clone)]
struct ScaleModel {
    scale: f64,
    load: i64,
}

impl Model for ScaleModel {
    fn kind(&self) -> RString {
        port::GENERATOR.into()
    }
    fn name(&self) -> RString {
        format!("x{}", self.scale).into()
    }
    fn info(&self) -> RString {
        serde_json::json!({"load": self.load}).to_string().into()
    }
    fn forward(&self, input: &TensorRef) -> RResult<TensorRef, NodeError> {
        RResult::ROk((input.tensor() * self.scale).into())
    }
    fn parameter(&self, _: RStr<'_>) -> ROption<TensorRef> {
        ROption::RNone
    }
}

static LOADS: AtomicI64 = AtomicI64::new(0);

/// Cacheable, with a model output: loads its model through the shared model cache, before (or, `late`, after)
/// reading its input.
struct ModelSource {
    value: Input<f64>,
    scale: Param<f64>,
    late: Param<bool>,
    model: Output<Generator>,
    out: Output<f64>,
}
impl Declared for ModelSource {
    const INFO: NodeInfo = info("test.model", "Model", "Cacheable: a model multiplying by `scale`; value x scale.");
    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        ModelSource {
            value: d.input("value", "a number"),
            scale: d.float("scale", 2.0, -1e6..=1e6, "the model's factor"),
            late: d.bool("late", false, "read the input before loading the model"),
            model: d.output("model", "multiplies by scale"),
            out: d.output("value", "value x scale"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let scale = io.read(&self.scale)?;
        if io.read(&self.late)? {
            io.read(&self.value)?;
        }
        let model = ctx.shared_model(&format!("test.model:{scale}"), || {
            let load = LOADS.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(ModelRef::from_ptr(RArc::new(ScaleModel { scale, load }), TD_Opaque))
        })?;
        let v = io.read(&self.value)?;
        io.write(&self.model, Generator(model));
        io.write(&self.out, v * scale);
        Ok(())
    }
}

/// Runs a model on a tensor.
struct Apply {
    model: Input<Generator>,
    input: Input<Tensor>,
    out: Output<Tensor>,
}
impl Declared for Apply {
    const INFO: NodeInfo = info("test.apply", "Apply", "The model on the input tensor.");
    fn declare(d: &mut Declare) -> Self {
        let (model, input) = (d.input("model", "a model"), d.input("tensor", "its input"));
        Apply { model, input, out: d.output("tensor", "its output") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let Generator(m) = io.read(&self.model)?;
        let x: TensorRef = io.read(&self.input)?.into();
        let y = m.forward(&x).into_result()?;
        io.write(&self.out, y.tensor());
        Ok(())
    }
}

subspace_sdk::export_plugin!(
    Codes,
    Constant,
    Add,
    Scale,
    Sleep,
    Fail,
    Panic,
    Count,
    Clock,
    TensorSource,
    TensorPass,
    TensorAddress,
    WaitForCancel,
    WrongOutput,
    Choose,
    Store,
    ModelSource,
    Apply
);

//! Test nodes: small, observable behaviours the host's tests assert on (laziness, caching, parallelism, failure
//! isolation, panics, zero-copy tensors, cancellation). Not installed with the product plugins.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subspace_sdk::tch::{Kind, Tensor};
use subspace_sdk::*;

const CAT: &str = "Test";

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

struct Constant;
impl Node for Constant {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.constant", "1.0.0", "Constant", CAT, "Outputs its parameter.")
            .param(ParamSpec::float("value", 0.0, -1e9, 1e9, "the number"))
            .output(PortSpec::new("value", port::FLOAT, "the number"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = io.float("value")?;
        io.output("value", Value::Float(v));
        Ok(())
    }
}

fn float_input(io: &NodeIo<'_>, port: &str) -> NodeResult<f64> {
    match io.input(port)? {
        Value::Float(x) => Ok(*x),
        other => Err(NodeError::input(port, format!("expected float, got {}", other.port_type()))),
    }
}

struct Add;
impl Node for Add {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.add", "1.2.0", "Add", CAT, "augend + addend")
            .input(PortSpec::new("augend", port::FLOAT, "left"))
            .input(PortSpec::new("addend", port::FLOAT, "right"))
            .output(PortSpec::new("sum", port::FLOAT, "augend + addend"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let s = float_input(io, "augend")? + float_input(io, "addend")?;
        io.output("sum", Value::Float(s));
        Ok(())
    }
}

struct Scale;
impl Node for Scale {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.scale", "1.0.0", "Scale", CAT, "value x factor")
            .input(PortSpec::new("value", port::FLOAT, "input"))
            .param(ParamSpec::float("factor", 1.0, -1e6, 1e6, "multiplier"))
            .output(PortSpec::new("value", port::FLOAT, "value x factor"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = float_input(io, "value")? * io.float("factor")?;
        io.output("value", Value::Float(v));
        Ok(())
    }
}

struct Sleep;
impl Node for Sleep {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.sleep", "1.0.0", "Sleep", CAT, "Waits, then passes its input on; reports when it ran.")
            .input(PortSpec::new("value", port::FLOAT, "passed through").optional())
            .param(ParamSpec::int("ms", 100, 0, 60_000, "how long"))
            .output(PortSpec::new("value", port::FLOAT, "the input, or 0"))
            .output(PortSpec::new("started", port::FLOAT, "UNIX time it started"))
            .output(PortSpec::new("finished", port::FLOAT, "UNIX time it finished"))
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let started = now();
        let ms = io.int("ms")? as u64;
        for step in 0..10 {
            ctx.progress(step, 10, "sleeping");
            std::thread::sleep(Duration::from_millis(ms / 10));
        }
        let v = if io.get("value").is_some() { float_input(io, "value")? } else { 0.0 };
        io.output("value", Value::Float(v));
        io.output("started", Value::Float(started));
        io.output("finished", Value::Float(now()));
        Ok(())
    }
}

struct Fail;
impl Node for Fail {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.fail", "1.0.0", "Fail", CAT, "Always fails with an error naming its input.")
            .input(PortSpec::new("value", port::FLOAT, "ignored").optional())
            .output(PortSpec::new("value", port::FLOAT, "never produced"))
    }
    fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        Err(NodeError::input("value", "this node always fails"))
    }
}

struct Panic;
impl Node for Panic {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.panic", "1.0.0", "Panic", CAT, "Panics inside the plugin.")
            .output(PortSpec::new("value", port::FLOAT, "never produced"))
    }
    fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        panic!("deliberate panic in test.panic")
    }
}

static COUNT: AtomicI64 = AtomicI64::new(0);

struct Count;
impl Node for Count {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.count", "1.0.0", "Count", CAT, "Counts its executions in this process.")
            .input(PortSpec::new("value", port::FLOAT, "anything").optional())
            .param(ParamSpec::text("tag", "", "changes the cache key"))
            .output(PortSpec::new("count", port::INT, "executions so far, this one included"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        io.output("count", Value::Int(COUNT.fetch_add(1, Ordering::SeqCst) + 1));
        Ok(())
    }
}

struct Volatile;
impl Node for Volatile {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.clock", "1.0.0", "Clock", CAT, "The current time: volatile, never cached across runs.")
            .output(PortSpec::new("value", port::FLOAT, "UNIX time"))
            .volatile()
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        io.output("value", Value::Float(now()));
        Ok(())
    }
}

struct TensorSource;
impl Node for TensorSource {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.tensor", "1.0.0", "Tensor", CAT, "A float tensor 0..n, or seeded normals.")
            .param(ParamSpec::int("n", 8, 1, 1 << 24, "length"))
            .param(ParamSpec::bool("random", false, "seeded normals instead of 0..n"))
            .output(PortSpec::new("tensor", port::TENSOR, "the tensor"))
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let n = io.int("n")?;
        let t = if io.bool("random")? {
            subspace_sdk::context::randn(&mut ctx.rng(), &[n])
        } else {
            Tensor::arange(n, (Kind::Float, ctx.device()))
        };
        io.output("tensor", Value::Tensor(t.into()));
        Ok(())
    }
}

struct TensorPass;
impl Node for TensorPass {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.pass", "1.0.0", "Pass", CAT, "Passes a tensor on unchanged.")
            .input(PortSpec::new("tensor", port::TENSOR, "in"))
            .output(PortSpec::new("tensor", port::TENSOR, "the same tensor"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = io.tensor("tensor")?;
        io.output("tensor", Value::Tensor(t.into()));
        Ok(())
    }
}

struct TensorAddress;
impl Node for TensorAddress {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.address", "1.0.0", "Address", CAT, "The address of a tensor's data (to prove no copy).")
            .input(PortSpec::new("tensor", port::TENSOR, "in"))
            .output(PortSpec::new("address", port::INT, "data pointer"))
            .output(PortSpec::new("sum", port::FLOAT, "sum of elements"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = io.tensor("tensor")?;
        io.output("address", Value::Int(t.data_ptr() as i64));
        io.output("sum", Value::Float(t.sum(Kind::Double).double_value(&[])));
        Ok(())
    }
}

struct WaitForCancel;
impl Node for WaitForCancel {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.wait_for_cancel", "1.0.0", "Wait for cancel", CAT, "Loops until the run is cancelled (at most 10 s).")
            .output(PortSpec::new("value", port::FLOAT, "never produced when cancelled"))
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            ctx.check_cancelled()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        io.output("value", Value::Float(0.0));
        Ok(())
    }
}

struct WrongOutput;
impl Node for WrongOutput {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.wrong_output", "1.0.0", "Wrong output", CAT, "Declares a float output but produces text.")
            .output(PortSpec::new("value", port::FLOAT, "declared float"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        io.output("value", Value::Text("not a float".into()));
        Ok(())
    }
}

struct Choose;
impl Node for Choose {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.choose", "1.0.0", "Choose", CAT, "Outputs its choice parameter.")
            .param(ParamSpec::choice("mode", "a", &["a", "b"], "a or b"))
            .param(ParamSpec::int("steps", 1, 1, 10, "an int in [1, 10]"))
            .output(PortSpec::new("mode", port::TEXT, "the choice"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let m = io.text("mode")?;
        io.output("mode", Value::Text(m.into()));
        Ok(())
    }
}

struct Latents;
impl Node for Latents {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("test.latents", "1.0.0", "Latents", CAT, "Seeded normal codes, optionally with a NaN in the first row.")
            .param(ParamSpec::int("n", 4, 1, 1 << 20, "codes"))
            .param(ParamSpec::int("dim", 8, 1, 4096, "dimension"))
            .param(ParamSpec::bool("nan", false, "put a NaN in the first code"))
            .output(PortSpec::new("codes", port::LATENTS, "N x D codes"))
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let z = subspace_sdk::context::randn(&mut ctx.rng(), &[io.int("n")?, io.int("dim")?]);
        if io.bool("nan")? {
            let _ = z.get(0).get(0).fill_(f64::NAN);
        }
        io.output("codes", Value::Latents(z.into()));
        Ok(())
    }
}

export_plugin!(
    Latents,
    Constant, Add, Scale, Sleep, Fail, Panic, Count, Volatile, TensorSource, TensorPass, TensorAddress, WaitForCancel,
    WrongOutput, Choose
);

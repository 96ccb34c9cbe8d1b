//! tract's runner, shared by the detectors and the classifier: reading an ONNX file (errors
//! that name it), the graph's declared inputs and outputs, the plan with one reused state and one
//! preallocated input tensor ([`TractRunner`]), the arithmetic it runs in ([`Precision`]) and
//! the process-wide thread setting.
//!
//! # Allocations (measured with tract-onnx 0.23.9, x86_64, release, 1 thread)
//!
//! Everything on our side is preallocated at construction: the input tensor (held as an
//! `Arc<Tensor>` and refilled in place through `Arc::get_mut` once tract has dropped its
//! clone), the candidate list, the plan and one reused `TypedSimpleState`. A frame runs as
//! `set_input` + `exec` + `output(i)` (outputs borrowed, no output `TVec`) + `reset_turn` on an
//! `into_optimized()` plan with a concrete input shape. Letterboxing, output decoding, NMS and
//! the copy into the caller's `out` allocate nothing.
//!
//! tract itself allocates on every run, and no API of 0.23.9 avoids it. Allocations per
//! warm run, counted with a counting global allocator (`tests/detect.rs`
//! `tract_allocations_per_detect_are_measured` checks the first column stays constant; the
//! other columns come from a one-off comparison program):
//!
//! | model (optimized plan nodes)   | our `detect`/`classify` | `SimplePlan::run` | `SimpleState::run` | same, decluttered-only plan |
//! |--------------------------------|------------------------|-------------------|--------------------|-----------------------------|
//! | BlazeFace back 256 (318)       | 889 (56.4 MB)          | 898               | 890                | 77 635 (259 MB)             |
//! | BlazeFace front 128            | 467                    |                   |                    |                             |
//! | YuNet-s 640×640 (262)          | 654 (104 MB)           | 666 (109 MB)      | 658                | 56 488 (426 MB)             |
//! | age/gender int8 (240)          | 484 (3.9 MB)           | 489               | 485                | 44 513                      |
//! | age/gender f32 (132)           | 293 (4.4 MB)           | 301               | 294                | 17 823                      |
//!
//! So reusing the state and the input saves only a handful; `into_optimized()` is what
//! matters (a decluttered-only plan runs generic ops that allocate per element block). The
//! rest is structural: `SimpleState::exec` calls each node's `eval`, and every op returns its
//! outputs as a fresh `TVec<TValue>` (`SmallVec<[Arc<Tensor>; 4]>`): one `Arc` plus one
//! aligned buffer (`Tensor::uninitialized`) per node output, a heap `TVec` for nodes with
//! more than four inputs, and per-op temporaries (e.g. the matmul output tensor, see
//! `core/src/ops/matmul/optimized.rs`); only the matmul packing scratch is cached per thread
//! (`tract_linalg::frame::mmm::scratch`). There is no CPU tensor arena in tract 0.23
//! (sonos/tract#2176, an open RFC; the maintainer in sonos/tract#114: "tract performs
//! allocation all the time, everywhere"). The counts do not depend on the frame content.
//! The binary's global allocator ([`crate::heap::PoolAlloc`]) therefore recycles these
//! blocks: they are the same sizes every frame, so after the first frames size-class free
//! lists serve every one of them and none reaches the system allocator. A loop that makes no
//! allocation requests at all would need an inference engine other than tract.
//! (zune-jpeg adds 4 allocations per MJPEG frame in the decode stage; see `crate::decode`.)

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// Read and parse an ONNX file; errors name the file and say whether it is missing, empty,
/// or not ONNX.
pub(crate) fn read_onnx(path: &Path) -> anyhow::Result<pb::ModelProto> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("model {}: cannot open", path.display()))?;
    if meta.is_dir() {
        bail!("model {}: is a directory, not an ONNX file", path.display());
    }
    if meta.len() == 0 {
        bail!("model {}: file is empty", path.display());
    }
    let proto = tract_onnx::onnx().proto_model_for_path(path).map_err(|e| {
        anyhow::anyhow!(
            "model {}: not a readable ONNX file (truncated or another format): {e}",
            path.display()
        )
    })?;
    let graph = proto
        .graph
        .as_ref()
        .with_context(|| format!("model {}: not an ONNX model (no graph)", path.display()))?;
    if graph.node.is_empty() || graph.output.is_empty() {
        bail!(
            "model {}: not an ONNX model, or truncated (graph has {} nodes, {} outputs)",
            path.display(),
            graph.node.len(),
            graph.output.len()
        );
    }
    Ok(proto)
}

/// Graph inputs that are not initializers.
pub(crate) fn real_inputs(proto: &pb::ModelProto) -> Vec<&pb::ValueInfoProto> {
    let Some(g) = proto.graph.as_ref() else {
        return vec![];
    };
    g.input
        .iter()
        .filter(|i| !g.initializer.iter().any(|t| t.name == i.name))
        .collect()
}

/// Declared dims of a value: `Some(n)` for a fixed size, `None` for a symbolic one.
pub(crate) fn dims(v: &pb::ValueInfoProto) -> Vec<Option<i64>> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TV;
    let Some(TV::TensorType(tt)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return vec![];
    };
    let Some(shape) = tt.shape.as_ref() else {
        return vec![];
    };
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(n)) if *n > 0 => Some(*n),
            _ => None,
        })
        .collect()
}

pub(crate) fn describe_values(proto: &pb::ModelProto, inputs: bool) -> String {
    let list: Vec<&pb::ValueInfoProto> = if inputs {
        real_inputs(proto)
    } else {
        proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().collect())
            .unwrap_or_default()
    };
    let parts: Vec<String> = list
        .iter()
        .map(|v| {
            let d: Vec<String> = dims(v)
                .iter()
                .map(|d| d.map_or("?".to_string(), |n| n.to_string()))
                .collect();
            format!("{} [{}]", v.name, d.join(","))
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// How many threads tract's matrix products may use: its `multithread-mm` rayon pool for
/// `n > 1`, none for 1 (everything runs on the calling thread; a one-thread pool would only
/// add hand-offs). tract keeps this setting process-wide; call it before the first inference.
/// `n > 1` needs a build with the `multithread` feature (`cargo build --features multithread`),
/// else it is an error that says so.
///
/// Measured on the 2-vCPU x86 build machine (`agegender bench --threads N`, 1-face stream): 2
/// threads are slower, detect 32.7/34.5 ms against 26.8/30.7 ms with 1, classify 8.3/9.8 against
/// 6.8/7.8 ms per face (two runs each): tract only splits products of 64 panels or more, these
/// networks' layers are small, and the hand-offs cost more than they save. The feature also
/// adds 6.6 MB to the stripped aarch64 binary, so it is off by default; on a 4-core board, measure with
/// a `--features multithread` build and `agegender bench --threads 4`.
pub fn set_inference_threads(n: usize) -> anyhow::Result<()> {
    #[cfg(feature = "multithread")]
    {
        use tract_linalg::multithread::{set_default_executor, Executor};
        set_default_executor(if n > 1 {
            Executor::multithread(n)
        } else {
            Executor::SingleThread
        });
        Ok(())
    }
    #[cfg(not(feature = "multithread"))]
    {
        anyhow::ensure!(
            n <= 1,
            "threads = {n}: this build runs inference on one thread; rebuild with \
             `cargo build --release --features multithread` for tract's thread pool"
        );
        Ok(())
    }
}

/// An ONNX file as the runtime hands it to tract (with [`fix_constant_of_shape`] applied), and
/// its first input's shape with unknown dimensions set to 1. For tools such as
/// `examples/profile_ops.rs`; the detectors and the classifier load through their own types.
pub fn read_model(path: &Path) -> anyhow::Result<(InferenceModel, Vec<usize>)> {
    let mut proto = read_onnx(path)?;
    fix_constant_of_shape(&mut proto);
    let shape = real_inputs(&proto)
        .first()
        .map(|i| {
            dims(i)
                .iter()
                .map(|d| d.unwrap_or(1).max(1) as usize)
                .collect()
        })
        .unwrap_or_default();
    let model = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(|e| anyhow::anyhow!("model {}: tract cannot load it: {e:?}", path.display()))?;
    Ok((model, shape))
}

/// Give every `ConstantOfShape` node without a `value` attribute an explicit float32 zero
/// (ONNX's default). tract 0.23 would otherwise default it to f64 and fail to type the graph
/// of the MediaPipe BlazeFace export.
pub(crate) fn fix_constant_of_shape(proto: &mut pb::ModelProto) -> usize {
    let mut fixed = 0;
    let Some(graph) = proto.graph.as_mut() else {
        return 0;
    };
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op_type == "ConstantOfShape")
    {
        if node.attribute.iter().any(|a| a.name == "value") {
            continue;
        }
        node.attribute.push(pb::AttributeProto {
            name: "value".into(),
            r#type: pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(pb::TensorProto {
                dims: vec![1],
                data_type: pb::tensor_proto::DataType::Float as i32,
                float_data: vec![0.0],
                ..Default::default()
            }),
            ..Default::default()
        });
        fixed += 1;
    }
    fixed
}

/// Arithmetic a plan runs in. The runner's buffers are f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precision {
    /// As the model was exported (f32, or the integer ops of a quantized file).
    AsExported,
    /// Every f32 tensor and op turned into f16 at load (tract's `f32_to_f16` translator):
    /// arm64 fp16 kernels, twice the lanes per instruction. Input and outputs are converted
    /// at the edges, into and out of preallocated tensors.
    F16,
}

/// A runnable tract plan with one reused state and one preallocated input tensor.
pub(crate) struct TractRunner {
    state: TypedSimpleState,
    /// Our input tensor (f32). tract receives clones of this `Arc` (or of `input_f16`); after
    /// `reset_turn` we hold the only reference again and refill it in place.
    input: Arc<Tensor>,
    /// The f16 copy handed to an f16 plan, refilled from `input` before each run.
    input_f16: Option<Arc<Tensor>>,
    /// f16 outputs converted to f32 (grown on the first run, then reused).
    outputs_f32: Vec<Vec<f32>>,
    n_outputs: usize,
    /// What runs here, for error messages ("detector", "classifier").
    what: &'static str,
}

impl TractRunner {
    /// Type, optimise and plan `model` for the concrete f32 input `shape`.
    pub(crate) fn new(
        path: &Path,
        model: InferenceModel,
        shape: &[usize],
        what: &'static str,
    ) -> anyhow::Result<Self> {
        Self::with_precision(path, model, shape, what, Precision::AsExported)
    }

    /// [`TractRunner::new`], in the given arithmetic.
    pub(crate) fn with_precision(
        path: &Path,
        model: InferenceModel,
        shape: &[usize],
        what: &'static str,
        precision: Precision,
    ) -> anyhow::Result<Self> {
        let ctx = |what: &str| format!("model {}: {what}", path.display());
        let model = model
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("cannot set the input shape")))?;
        let mut typed = model
            .into_typed()
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("tract cannot type this graph")))?;
        if precision == Precision::F16 {
            typed = typed.into_decluttered().map_err(|e| {
                anyhow::anyhow!("{}: {e:?}", ctx("tract cannot simplify this graph"))
            })?;
            use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
            use tract_onnx::tract_core::transform::ModelTransform;
            FloatPrecisionTranslator::new(f32::datum_type(), f16::datum_type())
                .transform(&mut typed)
                .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("cannot turn the graph into f16")))?;
        }
        let typed = typed
            .into_optimized()
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("tract cannot optimise this graph")))?;
        let n_outputs = typed.output_outlets().map(|o| o.len()).unwrap_or(0);
        let plan = typed
            .into_runnable()
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("tract cannot plan this graph")))?;
        let state = TypedSimpleState::new(&plan)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", ctx("tract cannot create a state")))?;
        let input = Arc::new(Tensor::zero::<f32>(shape)?);
        let input_f16 = match precision {
            Precision::F16 => Some(Arc::new(Tensor::zero::<f16>(shape)?)),
            Precision::AsExported => None,
        };
        Ok(TractRunner {
            state,
            input,
            input_f16,
            outputs_f32: vec![Vec::new(); n_outputs],
            n_outputs,
            what,
        })
    }

    /// A runner of the same plan (shared: the weights are not copied) with its own state
    /// and buffers, for another thread.
    pub(crate) fn fork(&self) -> anyhow::Result<Self> {
        let state = TypedSimpleState::new(self.state.plan())
            .map_err(|e| anyhow::anyhow!("{}: tract cannot create a state: {e:?}", self.what))?;
        let shape = self.input.shape();
        Ok(TractRunner {
            state,
            input: Arc::new(Tensor::zero::<f32>(shape)?),
            input_f16: match &self.input_f16 {
                Some(_) => Some(Arc::new(Tensor::zero::<f16>(shape)?)),
                None => None,
            },
            outputs_f32: vec![Vec::new(); self.n_outputs],
            n_outputs: self.n_outputs,
            what: self.what,
        })
    }

    /// The input buffer to fill (only callable between runs).
    pub(crate) fn input_mut(&mut self) -> anyhow::Result<&mut [f32]> {
        let t = Arc::get_mut(&mut self.input)
            .with_context(|| format!("{} input tensor is still shared with tract", self.what))?;
        // SAFETY: the tensor was created as f32 and is plain memory.
        Ok(unsafe { t.as_slice_mut_unchecked::<f32>() })
    }

    /// Run the plan on the current input; `read` sees every output as an f32 slice.
    pub(crate) fn run<R>(
        &mut self,
        read: impl FnOnce(&[&[f32]]) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let what = self.what;
        let input = match &mut self.input_f16 {
            Some(half) => {
                let t = Arc::get_mut(half)
                    .with_context(|| format!("{what} f16 input is still shared with tract"))?;
                // SAFETY: created as f16 and f32 tensors of one shape, plain memory.
                let dst = unsafe { t.as_slice_mut_unchecked::<f16>() };
                let src = unsafe { self.input.as_slice_unchecked::<f32>() };
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = f16::from_f32(*s);
                }
                TValue::from_const(half.clone())
            }
            None => TValue::from_const(self.input.clone()),
        };
        self.state
            .set_input(0, input)
            .map_err(|e| anyhow::anyhow!("{what} input: {e:?}"))?;
        let result = self
            .state
            .exec()
            .map_err(|e| anyhow::anyhow!("{what} inference failed: {e:?}"))
            .and_then(|_| {
                let mut slices: [&[f32]; 16] = [&[]; 16];
                anyhow::ensure!(self.n_outputs <= 16, "too many {what} outputs");
                // f16 outputs first go through our f32 buffers.
                for (i, buf) in self.outputs_f32.iter_mut().enumerate() {
                    let v = self
                        .state
                        .output(i)
                        .map_err(|e| anyhow::anyhow!("{what} output {i}: {e:?}"))?;
                    if v.datum_type() == f16::datum_type() {
                        // SAFETY: checked f16 above; tract outputs are plain tensors.
                        let half = unsafe { v.as_slice_unchecked::<f16>() };
                        buf.resize(half.len(), 0.0);
                        for (d, s) in buf.iter_mut().zip(half) {
                            *d = s.to_f32();
                        }
                    }
                }
                for (i, slot) in slices.iter_mut().enumerate().take(self.n_outputs) {
                    let v = self
                        .state
                        .output(i)
                        .map_err(|e| anyhow::anyhow!("{what} output {i}: {e:?}"))?;
                    *slot = if v.datum_type() == f16::datum_type() {
                        &self.outputs_f32[i]
                    } else {
                        anyhow::ensure!(
                            v.datum_type() == f32::datum_type(),
                            "{what} output {i} is {:?}, not f32",
                            v.datum_type()
                        );
                        // SAFETY: checked f32 above; tract outputs are plain tensors.
                        unsafe { v.as_slice_unchecked::<f32>() }
                    };
                }
                read(&slices[..self.n_outputs])
            });
        self.state
            .reset_turn()
            .map_err(|e| anyhow::anyhow!("{what} state reset: {e:?}"))?;
        result
    }
}

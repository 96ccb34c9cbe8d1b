//! A minimal reproducer of where tract 0.23.9 spends BlazeFace's time, in the form one would
//! file upstream (docs/tract-detector.md): each kind of layer of the MediaPipe BlazeFace
//! (back-256) network alone, at the shapes of its first stage, built here as ONNX protobuf with
//! random weights and loaded through tract-onnx like any file (`into_optimized`, one thread).
//! Prints, per model, the optimised plan's operators and the median time per run.
//! `scripts/bench/blazeface_ops_ort.py` builds the same models (same shapes and attributes)
//! and times them through onnxruntime.
//!
//!     cargo run --release --example blazeface_ops_repro -- [RUNS]
//!
//! The models (NCHW, f32, batch 1):
//! - `first_conv`: 5×5 stride 2, 3 → 24 channels, 256×256 → 128×128, pads [1,1,2,2], + ReLU;
//! - `depthwise`: 3×3 depthwise (group 24), 24 channels, 128×128, pad 1;
//! - `pointwise_add_relu`: the end of a BlazeBlock: 1×1 conv 24 → 24 + bias, plus the
//!   block's input (the residual), ReLU;
//! - `maxpool`: 2×2 stride 2 max pooling, 24 channels, 128×128 → 64×64 (the residual path of
//!   a stride-2 block);
//! - `block`: one whole BlazeBlock, depthwise → pointwise + residual → ReLU.
//!
//! Deterministic weights (splitmix64), so two machines build the same models.

use std::time::Instant;

use tract_onnx::pb::{self, attribute_proto::AttributeType};
use tract_onnx::prelude::*;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const F32: i32 = 1;

/// A random f32 initializer (values in [-0.1, 0.1)).
fn weights(name: &str, dims: &[i64], state: &mut u64) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    let raw = (0..n)
        .flat_map(|_| ((splitmix(state) % 2000) as f32 / 10_000.0 - 0.1).to_le_bytes())
        .collect();
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: F32,
        raw_data: raw,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// A one-input, one-output ONNX model ("input" [1, c, h, w] to "output") of these nodes.
fn model(
    name: &str,
    (c, h, w): (i64, i64, i64),
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
) -> pb::ModelProto {
    let value = |name: &str, dims: Option<[i64; 4]>| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: F32,
                shape: dims.map(|d| pb::TensorShapeProto {
                    dim: d
                        .iter()
                        .map(|&v| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        name: name.into(),
        node: nodes,
        initializer: inits,
        input: vec![value("input", Some([1, c, h, w]))],
        output: vec![value("output", None)],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 12,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// The models of the module comment: (name, input [c, h, w], model).
fn models() -> Vec<(&'static str, (i64, i64, i64), pb::ModelProto)> {
    let s = &mut 0x5eed_u64;
    let c = 24;
    let dw = |x: &str, out: &str| {
        node(
            "Conv",
            &[x, "dw_w"],
            out,
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
                int("group", c),
            ],
        )
    };
    let pw = |x: &str, out: &str| {
        node(
            "Conv",
            &[x, "pw_w", "pw_b"],
            out,
            vec![ints("kernel_shape", &[1, 1])],
        )
    };
    let first = model(
        "first_conv",
        (3, 256, 256),
        vec![
            node(
                "Conv",
                &["input", "w", "b"],
                "conv",
                vec![
                    ints("kernel_shape", &[5, 5]),
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 1, 2, 2]),
                ],
            ),
            node("Relu", &["conv"], "output", vec![]),
        ],
        vec![weights("w", &[c, 3, 5, 5], s), weights("b", &[c], s)],
    );
    let depthwise = model(
        "depthwise",
        (c, 128, 128),
        vec![dw("input", "output")],
        vec![weights("dw_w", &[c, 1, 3, 3], s)],
    );
    let tail = model(
        "pointwise_add_relu",
        (c, 128, 128),
        vec![
            pw("input", "pw"),
            node("Add", &["input", "pw"], "add", vec![]),
            node("Relu", &["add"], "output", vec![]),
        ],
        vec![weights("pw_w", &[c, c, 1, 1], s), weights("pw_b", &[c], s)],
    );
    let pool = model(
        "maxpool",
        (c, 128, 128),
        vec![node(
            "MaxPool",
            &["input"],
            "output",
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        )],
        vec![],
    );
    let block = model(
        "block",
        (c, 128, 128),
        vec![
            dw("input", "dw"),
            pw("dw", "pw"),
            node("Add", &["input", "pw"], "add", vec![]),
            node("Relu", &["add"], "output", vec![]),
        ],
        vec![
            weights("dw_w", &[c, 1, 3, 3], s),
            weights("pw_w", &[c, c, 1, 1], s),
            weights("pw_b", &[c], s),
        ],
    );
    vec![
        ("first_conv", (3, 256, 256), first),
        ("depthwise", (c, 128, 128), depthwise),
        ("pointwise_add_relu", (c, 128, 128), tail),
        ("maxpool", (c, 128, 128), pool),
        ("block", (c, 128, 128), block),
    ]
}

/// The optimised plan's operators (Const and Source left out) and its median seconds per run.
fn time(
    proto: &pb::ModelProto,
    (c, h, w): (i64, i64, i64),
    runs: usize,
) -> TractResult<(String, f64)> {
    let shape = [1, c as usize, h as usize, w as usize];
    let model = tract_onnx::onnx()
        .model_for_proto_model(proto)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?;
    let ops: Vec<String> = model
        .eval_order()?
        .iter()
        .map(|&n| model.node(n).op().name().to_string())
        .filter(|n| n != "Const" && n != "Source")
        .collect();
    let plan = model.into_runnable()?;
    // one state reused, as a frame loop runs it
    let mut st = TypedSimpleState::new(&plan)?;
    let mut state = 7u64;
    let input: Tensor = tract_ndarray::Array4::from_shape_fn(shape, |_| {
        (splitmix(&mut state) % 1000) as f32 / 500.0 - 1.0
    })
    .into();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..5 {
        st.run(tvec!(input.clone().into()))?; // warm-up
    }
    for _ in 0..runs {
        let t0 = Instant::now();
        st.run(tvec!(input.clone().into()))?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((ops.join(" → "), times[times.len() / 2]))
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(Ok(200), |a| a.parse())?
        .max(1);
    println!(
        "tract-onnx 0.23.9, {} {:?}, median of {runs} runs",
        std::env::consts::ARCH,
        tract_linalg::isa::native()
    );
    for (name, input, proto) in models() {
        let (ops, t) = time(&proto, input, runs).map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        println!("{name:<20} {:>8.3} ms  {ops}", t * 1e3);
    }
    Ok(())
}

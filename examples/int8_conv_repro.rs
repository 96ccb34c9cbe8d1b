//! A minimal reproducer of tract 0.23.9's int8 convolution cost, in the form one would file
//! upstream (docs/tract-int8.md): the same stack of 3×3 convolutions with random weights, once
//! as f32 `Conv` and once as QOperator `QLinearConv` (u8 activations, i8 weights, per-tensor
//! scales, as onnxruntime's static quantizer writes them), built here as ONNX protobuf and
//! loaded through tract-onnx like any file. Prints the median time per run of each and the
//! ratio, plus the matrix-product kernel tract prefers for these shapes on this CPU.
//!
//!     cargo run --release --example int8_conv_repro -- [LAYERS] [CHANNELS] [SIDE] [RUNS]
//!
//! Defaults: 4 layers, 64 channels, 28×28, 50 runs (about the classifier's middle stage).
//! Deterministic weights (splitmix64), so two machines build the same two models. As aarch64
//! code under `../shared/tools/qemu-insn/count` it gives instruction counts instead of times
//! (run it with RUNS = 1 and 2 and take the difference).

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

fn tensor(name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type,
        raw_data: raw,
        ..Default::default()
    }
}

const F32: i32 = 1;
const U8: i32 = 2;
const I8: i32 = 3;
const I32: i32 = 6;

fn scalar_f32(name: &str, v: f32) -> pb::TensorProto {
    tensor(name, &[], F32, v.to_le_bytes().to_vec())
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
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

/// The conv stack as an ONNX model: f32 `Conv`s, or `QuantizeLinear` → `QLinearConv`s →
/// `DequantizeLinear` with the same (quantized) weights.
fn model(layers: usize, ch: usize, quantized: bool) -> pb::ModelProto {
    let mut state = 0x5eed;
    let mut graph = pb::GraphProto {
        name: "conv_stack".into(),
        ..Default::default()
    };
    let conv_attrs = || vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])];
    let wdims = [ch as i64, ch as i64, 3, 3];
    let wscale = 0.02f32;
    let mut prev = "input".to_string();
    if quantized {
        graph.initializer.push(scalar_f32("x_scale", 0.05));
        graph.initializer.push(tensor("x_zp", &[], U8, vec![128]));
        graph.initializer.push(scalar_f32("w_scale", wscale));
        graph.initializer.push(tensor("w_zp", &[], I8, vec![0]));
        graph.node.push(node(
            "QuantizeLinear",
            &["input", "x_scale", "x_zp"],
            "q0",
            vec![],
        ));
        prev = "q0".into();
    }
    for l in 0..layers {
        let w: Vec<i8> = (0..ch * ch * 9)
            .map(|_| (splitmix(&mut state) % 255) as i8)
            .collect();
        let (wn, bn, out) = (format!("w{l}"), format!("b{l}"), format!("y{l}"));
        if quantized {
            graph.initializer.push(tensor(
                &wn,
                &wdims,
                I8,
                w.iter().map(|&v| v as u8).collect(),
            ));
            graph
                .initializer
                .push(tensor(&bn, &[ch as i64], I32, vec![0; 4 * ch]));
            let inputs = [
                prev.as_str(),
                "x_scale",
                "x_zp",
                &wn,
                "w_scale",
                "w_zp",
                "x_scale",
                "x_zp",
                &bn,
            ];
            graph
                .node
                .push(node("QLinearConv", &inputs, &out, conv_attrs()));
        } else {
            let raw = w
                .iter()
                .flat_map(|&v| (v as f32 * wscale).to_le_bytes())
                .collect();
            graph.initializer.push(tensor(&wn, &wdims, F32, raw));
            graph
                .node
                .push(node("Conv", &[prev.as_str(), &wn], &out, conv_attrs()));
        }
        prev = out;
    }
    if quantized {
        graph.node.push(node(
            "DequantizeLinear",
            &[&prev, "x_scale", "x_zp"],
            "output",
            vec![],
        ));
    } else {
        graph
            .node
            .push(node("Identity", &[prev.as_str()], "output", vec![]));
    }
    let value = |name: &str| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: F32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    graph.input.push(value("input"));
    graph.output.push(value("output"));
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// Median seconds per run of `proto` on a [1, ch, side, side] input.
fn time(proto: &pb::ModelProto, ch: usize, side: usize, runs: usize) -> TractResult<f64> {
    let plan = tract_onnx::onnx()
        .model_for_proto_model(proto)?
        .with_input_fact(0, f32::fact([1, ch, side, side]).into())?
        .into_optimized()?
        .into_runnable()?;
    let mut state = 7u64;
    let input: Tensor = tract_ndarray::Array4::from_shape_fn((1, ch, side, side), |_| {
        (splitmix(&mut state) % 1000) as f32 / 100.0 - 5.0
    })
    .into();
    let mut times = Vec::with_capacity(runs);
    plan.run(tvec!(input.clone().into()))?; // warm-up
    for _ in 0..runs {
        let t0 = Instant::now();
        plan.run(tvec!(input.clone().into()))?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, d: usize| -> anyhow::Result<usize> {
        std::env::args()
            .nth(i)
            .map_or(Ok(d), |a| a.parse().map_err(anyhow::Error::from))
    };
    let (layers, ch, side, runs) = (arg(1, 4)?, arg(2, 64)?, arg(3, 28)?, arg(4, 50)?.max(1));
    let f =
        time(&model(layers, ch, false), ch, side, runs).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let q = time(&model(layers, ch, true), ch, side, runs).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The products the convolutions become: M = output channels, K = 9 × input channels,
    // N = output pixels.
    let (m, k, n) = (ch, 9 * ch, side * side);
    let kernel = |dt: DatumType| {
        tract_linalg::MmmDispatch::native()
            .preferred_kernel(dt, Some(m), Some(k), Some(n))
            .map(|k| k.name().to_string())
            .unwrap_or_else(|| "none".into())
    };
    println!(
        "{layers} conv 3x3 layers, {ch} channels, {side}x{side}: f32 {:.3} ms, QLinearConv int8 {:.3} ms, \
         int8/f32 = {:.2} (median of {runs}); kernels for M={m} K={k} N={n}: f32 {}, i32 {}; {} {:?}",
        f * 1e3,
        q * 1e3,
        q / f,
        kernel(f32::datum_type()),
        kernel(i32::datum_type()),
        std::env::consts::ARCH,
        tract_linalg::isa::native()
    );
    Ok(())
}

//! Where tract spends a model's time: each node of the optimised plan timed over many runs,
//! summed by operator type.
//!
//!     cargo run --release --example profile_ops -- MODEL.onnx [RUNS]
//!
//! The model is loaded as the runtime loads it; its first input, with unknown dimensions set
//! to 1 (BlazeFace [1,256,256,3], the classifier [1,3,112,112]), is filled with mid-grey. Prints one line per operator type:
//! total time per run, share, node count; then the ten slowest nodes.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use tract_onnx::prelude::*;

#[global_allocator]
static ALLOC: agegender::heap::PoolAlloc = agegender::heap::PoolAlloc;

fn main() -> anyhow::Result<()> {
    // HEAP=pool (the binary's policy), HEAP=mmap64k (fixed mmap threshold, no pool), else glibc's
    match std::env::var("HEAP").as_deref() {
        Ok("pool") => {
            agegender::heap::fix_mmap_threshold();
            agegender::heap::start_pooling();
        }
        Ok("mmap64k") => {
            agegender::heap::fix_mmap_threshold();
        }
        _ => {}
    }
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .context("usage: profile_ops MODEL.onnx [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);

    let (model, shape) = agegender::tract_runner::read_model(std::path::Path::new(&path))?;
    let plan = model
        .with_input_fact(0, f32::fact(&shape).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| anyhow::anyhow!("{path}: {e:?}"))?;
    let mut state = TypedSimpleState::new(&plan).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let input: TValue = Tensor::from_shape(&shape, &vec![128f32; shape.iter().product()])?.into();

    let nodes = plan.model().nodes().len();
    let mut per_node = vec![0f64; nodes];
    let mut total = 0f64;
    for run in 0..runs + 10 {
        let t0 = Instant::now();
        let mut times: Vec<(usize, f64)> = Vec::with_capacity(nodes);
        state
            .run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
                let t = Instant::now();
                let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                times.push((node.id, t.elapsed().as_secs_f64()));
                r
            })
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if run >= 10 {
            total += t0.elapsed().as_secs_f64();
            for (id, t) in times {
                per_node[id] += t;
            }
        }
    }
    let ms = |s: f64| s * 1e3 / runs as f64;
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (id, t) in per_node.iter().enumerate() {
        let e = by_op
            .entry(plan.model().node(id).op().name().to_string())
            .or_default();
        e.0 += t;
        e.1 += 1;
    }
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!(
        "{path}: input {shape:?}, {nodes} nodes, {:.3} ms per run ({runs} runs)",
        ms(total)
    );
    println!(
        "{:<28} {:>9} {:>7} {:>6}",
        "operator", "ms/run", "share", "nodes"
    );
    for (op, (t, n)) in &rows {
        println!(
            "{op:<28} {:>9.3} {:>6.1}% {n:>6}",
            ms(*t),
            100.0 * t / total
        );
    }
    let mut slow: Vec<usize> = (0..nodes).collect();
    slow.sort_by(|&a, &b| per_node[b].total_cmp(&per_node[a]));
    println!("slowest nodes:");
    for &id in slow.iter().take(10) {
        let node = plan.model().node(id);
        let out = plan
            .model()
            .outlet_fact(OutletId::new(id, 0))
            .map(|f| format!("{f:?}"))
            .unwrap_or_default();
        println!(
            "{:>9.3} ms  #{id} {} ({}) -> {out}",
            ms(per_node[id]),
            node.name,
            node.op().name()
        );
    }
    Ok(())
}

//! `agegender bench`: where a frame's time goes.
//!
//! The real [`Pipeline`] runs over a replayed stream (an `.mjpeg` file or a directory of
//! pictures, looped, as fast as possible) with the overlay composed into an in-memory canvas
//! (what the framebuffer display does, minus the final write) and the JSON lines serialised
//! and discarded. [`Pipeline::step_probed`] marks each stage; the time and the allocations
//! between two marks belong to the stage before. Every sample buffer is allocated before
//! the first frame, so measuring adds no allocations of its own.
//!
//! Allocations are counted by the binary's global allocator ([`crate::heap::PoolAlloc`],
//! thread-local counters) on the frame-loop thread only: the requests the program makes, and
//! of those the ones that reach the system allocator (the pool's misses).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::display::png::annotate_into;
use crate::display::Display;
use crate::heap::AllocCounts;
use crate::pipeline::{Pipeline, Stage, StepOutcome};
use crate::report::Sink;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// The display used while benchmarking: frame and overlay composed into a canvas allocated
/// once, as [`crate::display::fb::FbDisplay`] does before its single write.
pub struct CanvasDisplay {
    canvas: RgbImage,
}

impl CanvasDisplay {
    pub fn new(width: u32, height: u32) -> Self {
        CanvasDisplay {
            canvas: RgbImage::new(width, height),
        }
    }
}

impl Display for CanvasDisplay {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        annotate_into(frame, faces, &mut self.canvas);
        Ok(())
    }
    fn describe(&self) -> String {
        format!(
            "in-memory canvas {}x{}",
            self.canvas.width, self.canvas.height
        )
    }
}

/// A report sink that serialises nothing further and keeps nothing: counts the lines.
#[derive(Default)]
pub struct DiscardSink {
    pub lines: u64,
}

impl Sink for DiscardSink {
    fn write_line(&mut self, _line: &[u8]) -> anyhow::Result<bool> {
        self.lines += 1;
        Ok(true)
    }
}

/// Spread of one stage's time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageStats {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    /// Samples (frames for per-frame stages, faces for `classify_per_face`, detection
    /// frames for `detect`).
    pub n: usize,
}

impl StageStats {
    fn from_samples(samples: &mut [f64]) -> StageStats {
        if samples.is_empty() {
            return StageStats::default();
        }
        samples.sort_unstable_by(f64::total_cmp);
        let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        StageStats {
            median_ms: q(0.5),
            p10_ms: q(0.1),
            p90_ms: q(0.9),
            mean_ms: samples.iter().sum::<f64>() / samples.len() as f64,
            n: samples.len(),
        }
    }
}

/// What `agegender bench --json` prints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    /// Frames measured (after warm-up).
    pub frames: u64,
    /// Face lines written in those frames (tracked faces shown, classified or not).
    pub faces: u64,
    /// Faces shown (tracked) per frame, on average.
    pub faces_per_frame: f64,
    /// Classifier runs per measured frame (tracks are classified only when a view is worth
    /// it: src/track/).
    pub classifier_calls_per_frame: f64,
    pub fps: f64,
    pub wall_s: f64,
    /// CPU time of the whole process (every thread) per measured frame, and that CPU time
    /// over the wall time: the cores kept busy (1 at most for the one-thread loop; the
    /// stage-parallel loop's speed-up is bounded by it).
    pub cpu_ms_per_frame: f64,
    pub cores_busy: f64,
    pub detect_every: u32,
    /// Detector runs per measured frame (below `1 / detect_every` when motion gating skips
    /// some), and the gate's threshold (0: off).
    pub detections_per_frame: f64,
    pub motion_threshold: f32,
    /// Of the detector runs, those that searched only windows around the tracked faces
    /// (track-guided detection), per measured frame.
    pub window_detections_per_frame: f64,
    /// Time from a frame's arrival (captured) to its report lines written, over the measured
    /// frames: median and 95th percentile (the one-thread loop: the step after capture).
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// Per stage: decode, detect, align, classify_per_face, track, display, report, and
    /// `frame` (a whole step).
    pub stages: BTreeMap<String, StageStats>,
    /// Every allocation request on the frame-loop thread, per frame (tract's included).
    pub allocations_per_frame: f64,
    /// Of those, the ones that reached the system allocator (not served from the pool), per
    /// frame.
    pub system_allocations_per_frame: f64,
    /// The same, without the decoder's and tract's (capture, align, track, display, report).
    pub allocations_per_frame_ours: f64,
    /// Per frame, by stage.
    pub allocations_by_stage: BTreeMap<String, f64>,
    /// Peak resident set size of the process (VmHWM), in MiB.
    pub peak_rss_mb: f64,
    /// The classifier's form (as in the status line; empty if the caller did not set it).
    pub model_form: String,
    /// Detector workers (1: the one-thread loop, stage by stage; more: the stage-parallel
    /// loop, measured as a whole: no per-stage figures, allocations counted on every thread).
    pub workers: u32,
    /// Frames dropped at capture for want of a free frame slot (a replay waits instead: 0).
    pub busy_dropped: u64,
}

/// Stages are indexed by their discriminant, in [`Stage::ALL`] order (`Done` is past the end).
const N_STAGES: usize = Stage::ALL.len();

/// Run `warmup` frames, then measure `frames` frames. `count_allocs` reads the frame-loop
/// thread's allocation counters (pass `PoolAlloc::counts` when it is installed, or a
/// function returning zeros).
pub fn run(
    pipeline: &mut Pipeline,
    frames: u64,
    warmup: u64,
    max_faces: usize,
    detect_every: u32,
    motion_threshold: f32,
    count_allocs: fn() -> AllocCounts,
) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(frames > 0, "bench: --frames must be at least 1");
    for _ in 0..warmup {
        if pipeline.step()? == StepOutcome::End {
            anyhow::bail!("bench: the source ended during warm-up ({warmup} frames)");
        }
    }

    let n = frames as usize;
    // per-frame sums per stage, and one sample per classified face / detection
    let mut per_stage: Vec<Vec<f64>> = (0..N_STAGES).map(|_| Vec::with_capacity(n)).collect();
    let mut classify_face: Vec<f64> = Vec::with_capacity(n * max_faces.max(1));
    let mut detect: Vec<f64> = Vec::with_capacity(n);
    let mut frame_ms: Vec<f64> = Vec::with_capacity(n);
    let mut allocs = [0u64; N_STAGES];
    let mut frame_sum = [0f64; N_STAGES];
    let (mut measured, mut skipped, mut faces_shown) = (0u64, 0u64, 0u64);
    let fresh_before = count_allocs().fresh;
    let faces_before = pipeline.status().faces_total;
    let calls_before = pipeline.status().classifier_calls;
    let detections_before = pipeline.status().detections;
    let windows_before = pipeline.status().window_detections;
    let mut latency: Vec<f64> = Vec::with_capacity(n);

    let cpu_start = process_cpu_s();
    let start = Instant::now();
    while measured < frames {
        frame_sum.fill(0.0);
        let mut current: Option<(usize, Instant, u64)> = None;
        let step_start = Instant::now();
        let outcome = pipeline.step_probed(&mut |stage| {
            let now = Instant::now();
            let a = count_allocs().requests;
            if let Some((s, t, a0)) = current {
                let ms = (now - t).as_secs_f64() * 1e3;
                frame_sum[s] += ms;
                allocs[s] += a - a0;
                if s == Stage::Classify as usize {
                    classify_face.push(ms);
                } else if s == Stage::Detect as usize {
                    detect.push(ms);
                }
            }
            let i = stage as usize;
            current = (i < N_STAGES).then_some((i, now, a));
        })?;
        match outcome {
            StepOutcome::End => anyhow::bail!(
                "bench: the source ended after {measured} measured frames (use a looping source)"
            ),
            StepOutcome::Skipped => {
                skipped += 1;
                anyhow::ensure!(
                    skipped <= frames,
                    "bench: more frames skipped ({skipped}) than measured; see the warnings above"
                );
                continue;
            }
            StepOutcome::Frame { faces, .. } => faces_shown += faces as u64,
        }
        frame_ms.push(step_start.elapsed().as_secs_f64() * 1e3);
        for (s, v) in per_stage.iter_mut().enumerate() {
            v.push(frame_sum[s]);
        }
        latency.push(frame_ms[frame_ms.len() - 1] - frame_sum[Stage::Capture as usize]);
        measured += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu_s() - cpu_start;
    let fresh = count_allocs().fresh - fresh_before;

    let mut stages = BTreeMap::new();
    for (s, stage) in Stage::ALL.iter().enumerate() {
        if s == Stage::Detect as usize || s == Stage::Classify as usize {
            continue;
        }
        stages.insert(
            stage.name().to_string(),
            StageStats::from_samples(&mut per_stage[s]),
        );
    }
    stages.insert("detect".into(), StageStats::from_samples(&mut detect));
    stages.insert(
        "classify_per_face".into(),
        StageStats::from_samples(&mut classify_face),
    );
    stages.insert(
        "classify_per_frame".into(),
        StageStats::from_samples(&mut per_stage[Stage::Classify as usize]),
    );
    stages.insert("frame".into(), StageStats::from_samples(&mut frame_ms));

    let f = measured as f64;
    latency.sort_unstable_by(f64::total_cmp);
    let quantile = |q: f64| latency[((latency.len() - 1) as f64 * q).round() as usize];
    let total: u64 = allocs.iter().sum();
    let theirs = allocs[Stage::Decode as usize]
        + allocs[Stage::Detect as usize]
        + allocs[Stage::Classify as usize];
    Ok(BenchReport {
        frames: measured,
        faces: pipeline.status().faces_total - faces_before,
        faces_per_frame: faces_shown as f64 / f,
        classifier_calls_per_frame: (pipeline.status().classifier_calls - calls_before) as f64 / f,
        fps: f / wall,
        wall_s: wall,
        cpu_ms_per_frame: cpu * 1e3 / f,
        cores_busy: cpu / wall,
        detect_every,
        detections_per_frame: (pipeline.status().detections - detections_before) as f64 / f,
        motion_threshold,
        window_detections_per_frame: (pipeline.status().window_detections - windows_before) as f64
            / f,
        latency_p50_ms: quantile(0.5),
        latency_p95_ms: quantile(0.95),
        stages,
        allocations_per_frame: total as f64 / f,
        system_allocations_per_frame: fresh as f64 / f,
        allocations_per_frame_ours: (total - theirs) as f64 / f,
        allocations_by_stage: Stage::ALL
            .iter()
            .map(|&s| (s.name().to_string(), allocs[s as usize] as f64 / f))
            .collect(),
        peak_rss_mb: peak_rss_mb().unwrap_or(0.0),
        model_form: pipeline.status().model_form.to_string(),
        workers: 1,
        busy_dropped: 0,
    })
}

/// [`run`] for the stage-parallel loop ([`Pipeline::set_detect_workers`]): `warmup` frames,
/// then `frames` measured as a whole ([`Pipeline::run_frames`] to that many frames; its
/// threads start anew, the models and the tracks stay warm). No per-stage figures; latency is
/// from the status line's window (the last [`crate::pipeline::LATENCY_WINDOW`] frames).
/// Allocations are counted on every thread (`count_allocs`: `PoolAlloc::process_counts`)
/// over one more run of `2 × frames`: the difference of the two runs' counts, per frame, is
/// the steady state's (starting the threads, the same in both, cancels out).
pub fn run_parallel(
    pipeline: &mut Pipeline,
    frames: u64,
    warmup: u64,
    detect_every: u32,
    motion_threshold: f32,
    count_allocs: fn() -> AllocCounts,
) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(frames > 0, "bench: --frames must be at least 1");
    // (max_frames 0 would be no limit)
    if warmup > 0 {
        pipeline.set_max_frames(warmup);
        pipeline.run_frames()?;
    }
    let before = *pipeline.status();
    let a0 = count_allocs();
    pipeline.set_max_frames(warmup + frames);
    let cpu_start = process_cpu_s();
    let start = Instant::now();
    pipeline.run_frames()?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu_s() - cpu_start;
    let a1 = count_allocs();
    let after = *pipeline.status();
    pipeline.set_max_frames(warmup + 3 * frames);
    pipeline.run_frames()?;
    let a2 = count_allocs();
    let end = pipeline.end_run()?;
    let f = (after.frames - before.frames) as f64;
    anyhow::ensure!(
        f >= frames as f64 && end.frames - after.frames >= 2 * frames,
        "bench: the source ended after {} measured frames (use a looping source)",
        end.frames - before.frames
    );
    // (2N-frame run) - (N-frame run), per frame
    let steady = |x2: u64, x1: u64, x0: u64| ((x2 - x1) as f64 - (x1 - x0) as f64).max(0.0) / f;
    let per_frame = |a: u64, b: u64| (a - b) as f64 / f;
    Ok(BenchReport {
        frames: f as u64,
        faces: after.faces_total - before.faces_total,
        faces_per_frame: per_frame(after.faces_total, before.faces_total),
        classifier_calls_per_frame: per_frame(after.classifier_calls, before.classifier_calls),
        fps: f / wall,
        wall_s: wall,
        cpu_ms_per_frame: cpu * 1e3 / f,
        cores_busy: cpu / wall,
        detect_every,
        detections_per_frame: per_frame(after.detections, before.detections),
        motion_threshold,
        window_detections_per_frame: per_frame(after.window_detections, before.window_detections),
        latency_p50_ms: end.latency_p50_ms as f64,
        latency_p95_ms: end.latency_p95_ms as f64,
        stages: BTreeMap::new(),
        allocations_per_frame: steady(a2.requests, a1.requests, a0.requests),
        system_allocations_per_frame: steady(a2.fresh, a1.fresh, a0.fresh),
        allocations_per_frame_ours: 0.0,
        allocations_by_stage: BTreeMap::new(),
        peak_rss_mb: peak_rss_mb().unwrap_or(0.0),
        model_form: after.model_form.to_string(),
        workers: after.workers,
        busy_dropped: after.busy_dropped - before.busy_dropped,
    })
}

/// CPU time this process has used so far, every thread, in seconds.
pub fn process_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Peak resident set size of this process in MiB (`VmHWM` of /proc/self/status).
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl BenchReport {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} frames, {:.2} faces/frame, {:.3} classifier calls/frame, detect every {} (motion threshold {}: {:.3} detections/frame, {:.3} of them in windows): {:.1} fps ({:.1} s; CPU {:.2} ms per frame, {:.2} cores busy), latency p50 {:.1} ms, p95 {:.1} ms\n",
            self.frames,
            self.faces_per_frame,
            self.classifier_calls_per_frame,
            self.detect_every,
            self.motion_threshold,
            self.detections_per_frame,
            self.window_detections_per_frame,
            self.fps,
            self.wall_s,
            self.cpu_ms_per_frame,
            self.cores_busy,
            self.latency_p50_ms,
            self.latency_p95_ms
        );
        out += &format!(
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10}\n",
            "stage", "median ms", "p10 ms", "p90 ms", "mean ms", "n", "allocs/fr"
        );
        let order = [
            "capture",
            "decode",
            "motion",
            "detect",
            "align",
            "classify_per_face",
            "classify_per_frame",
            "track",
            "display",
            "report",
            "frame",
        ];
        for name in order {
            let Some(s) = self.stages.get(name) else {
                continue;
            };
            let key = if name.starts_with("classify") {
                "classify"
            } else {
                name
            };
            let a = match (name, self.allocations_by_stage.get(key)) {
                ("classify_per_face" | "frame", _) | (_, None) => String::new(),
                (_, Some(a)) => format!("{a:.1}"),
            };
            out += &format!(
                "{:<20} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>10}\n",
                name, s.median_ms, s.p10_ms, s.p90_ms, s.mean_ms, s.n, a
            );
        }
        out += &format!(
            "allocations per frame: {:.1} requested ({:.1} in our own stages), {:.2} reached the \
             system allocator; peak RSS {:.1} MiB\n",
            self.allocations_per_frame,
            self.allocations_per_frame_ours,
            self.system_allocations_per_frame,
            self.peak_rss_mb
        );
        out
    }
}

//! The runtime's crop must be the training pipeline's crop: src/align.rs against the Python
//! reference (scripts/reference/agegender_reference/align.py) on fixtures it wrote (scripts/fixtures/make_align_fixture.py).

use std::path::Path;

use agegender::align::{align_into, INPUT_SIZE};
use agegender::rgb::RgbImage;

fn load_rgb(path: &Path) -> RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    RgbImage {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    }
}

#[test]
fn rust_crop_matches_python_reference_within_2_levels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases["size"].as_u64().unwrap() as usize, INPUT_SIZE);
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 2);
    for case in cases {
        let image = load_rgb(&dir.join(case["image"].as_str().unwrap()));
        let expected = load_rgb(&dir.join(case["expected"].as_str().unwrap()));
        let lm: Vec<f32> = case["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let landmarks = [
            [lm[0], lm[1]],
            [lm[2], lm[3]],
            [lm[4], lm[5]],
            [lm[6], lm[7]],
        ];
        let mut out = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
        align_into(&image, &landmarks, INPUT_SIZE, &mut out).unwrap();
        let plane = INPUT_SIZE * INPUT_SIZE;
        let mut total = 0f64;
        for i in 0..plane {
            for c in 0..3 {
                total += (out[c * plane + i] as f64 - expected.data[i * 3 + c] as f64).abs();
            }
        }
        let mean = total / (3 * plane) as f64 / 255.0;
        assert!(
            mean <= 2.0 / 255.0,
            "{}: mean abs difference {:.4} > 2/255",
            case["image"],
            mean
        );
        // and the crop is not trivially black: the face is there
        let avg = out.iter().map(|&v| v as f64).sum::<f64>() / out.len() as f64;
        assert!(
            avg > 40.0,
            "{}: crop is nearly black (mean {avg:.1})",
            case["image"]
        );
    }
}

//! Still pictures (`agegender image`, and the loader `eval` shares): damaged files are named and
//! skipped, never labelled; unusual but valid ones (CMYK, grey, 16-bit, rotated by EXIF, tiny)
//! are labelled as the plain picture is; a huge header is refused before its pixels are
//! allocated. Pictures are made here from a UTKFace face pasted on a background, with the
//! encoders a camera, a phone or a print workflow would use.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Output;

use agegender::decode::{load_image, MAX_JPEG_SIDE};
use agegender::rgb::RgbImage;
use jpeg_encoder::{ColorType, Encoder};

/// The system allocator, remembering the largest single request of each thread since the
/// last [`largest_since`] reset: a decoder that allocates a huge frame before checking the
/// header shows here even if the allocation succeeds.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(new_size)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// Run `f`; the largest single allocation the calling thread made in it.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// Where the face is pasted in [`face_picture`].
const FACE_BOX: [u32; 4] = [80, 60, 240, 220];

/// A 320x280 picture with one face of the test split.
fn face_picture() -> RgbImage {
    let face = common::utk_test_faces(1, 18).remove(0);
    common::face_frame(&[(face, FACE_BOX)], 320, 280).1
}

fn encode(data: &[u8], w: u32, h: u32, color: ColorType, app1: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 92);
    if let Some(seg) = app1 {
        enc.add_app_segment(1, seg).unwrap();
    }
    enc.encode(data, w as u16, h as u16, color).unwrap();
    out
}

fn rgb_jpeg(img: &RgbImage, app1: Option<&[u8]>) -> Vec<u8> {
    encode(&img.data, img.width, img.height, ColorType::Rgb, app1)
}

/// The same picture as CMYK (no black ink: C = 255 - R, ...), as print workflows save it;
/// the encoder writes Adobe's APP14 segment and inverted samples, as Photoshop does.
fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
    let cmyk: Vec<u8> = img
        .data
        .chunks_exact(3)
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    encode(&cmyk, img.width, img.height, ColorType::Cmyk, None)
}

fn grey_jpeg(img: &RgbImage) -> Vec<u8> {
    let luma: Vec<u8> = img
        .data
        .chunks_exact(3)
        .map(|p| ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000) as u8)
        .collect();
    encode(&luma, img.width, img.height, ColorType::Luma, None)
}

fn png_bytes(buf: impl Into<image::DynamicImage>) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    buf.into()
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn png8(img: &RgbImage) -> Vec<u8> {
    png_bytes(image::RgbImage::from_raw(img.width, img.height, img.data.clone()).unwrap())
}

/// The same picture at 16 bits per channel (v * 257: exactly the 8-bit value scaled).
fn png16(img: &RgbImage) -> Vec<u8> {
    let wide: Vec<u16> = img.data.iter().map(|&v| v as u16 * 257).collect();
    png_bytes(
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(img.width, img.height, wide).unwrap(),
    )
}

/// An APP1 Exif segment (little-endian TIFF, one IFD entry) holding orientation `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut seg = b"Exif\0\0II*\0".to_vec();
    seg.extend_from_slice(&8u32.to_le_bytes()); // IFD0 right after the header
    seg.extend_from_slice(&1u16.to_le_bytes()); // one entry
    seg.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    seg.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    seg.extend_from_slice(&1u32.to_le_bytes()); // count
    seg.extend_from_slice(&o.to_le_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    seg
}

/// `img` as a camera stores it when the picture must be shown with EXIF orientation `o`
/// (the inverse of what the viewer applies).
fn stored_for(img: &RgbImage, o: u16) -> RgbImage {
    let buf = image::RgbImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
    let stored = match o {
        3 => image::imageops::rotate180(&buf),
        6 => image::imageops::rotate270(&buf), // shown turned 90 degrees clockwise
        8 => image::imageops::rotate90(&buf),
        _ => unreachable!(),
    };
    RgbImage {
        width: stored.width(),
        height: stored.height(),
        data: stored.into_raw(),
    }
}

/// A JPEG whose frame header says `w`x`h` (the scan data is a small picture's).
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = rgb_jpeg(&common::background(16, 16), None);
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

/// A PNG whose header says `w`x`h` (its CRC fixed, so only the size is wrong).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = png8(&common::background(16, 16));
    // signature (8), IHDR length (4), "IHDR" (4), width, height, ..., CRC over type + data
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---- the loader ---------------------------------------------------------------------------

#[test]
fn exif_orientation_turns_a_sideways_picture_upright() {
    let upright = face_picture();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.jpg");
    std::fs::write(&plain, rgb_jpeg(&upright, None)).unwrap();
    let reference = load_image(&plain).unwrap();
    for o in [3u16, 6, 8] {
        let stored = stored_for(&upright, o);
        let with = dir.path().join(format!("o{o}.jpg"));
        std::fs::write(&with, rgb_jpeg(&stored, Some(&exif_orientation(o)))).unwrap();
        let shown = load_image(&with).unwrap();
        let d = common::mean_abs_diff(&shown, &reference);
        assert!(d < 2.0, "orientation {o}: {d} from the upright picture");
        // Without the tag the same pixels stay as stored: the tag is what turned them.
        let without = dir.path().join(format!("raw{o}.jpg"));
        std::fs::write(&without, rgb_jpeg(&stored, None)).unwrap();
        let raw = load_image(&without).unwrap();
        assert!(
            (raw.width, raw.height) != (shown.width, shown.height)
                || common::mean_abs_diff(&raw, &reference) > 10.0,
            "orientation {o} made no difference"
        );
    }
}

#[test]
fn cmyk_grey_and_sixteen_bit_pictures_load_as_rgb() {
    let img = face_picture();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let rgb = load_image(&write("rgb.jpg", rgb_jpeg(&img, None))).unwrap();
    let cmyk = load_image(&write("cmyk.jpg", cmyk_jpeg(&img))).unwrap();
    let d = common::mean_abs_diff(&cmyk, &rgb);
    assert!(d < 4.0, "CMYK JPEG is {d} from the RGB one");

    let grey = load_image(&write("grey.jpg", grey_jpeg(&img))).unwrap();
    assert_eq!((grey.width, grey.height), (img.width, img.height));
    assert!(grey
        .data
        .chunks_exact(3)
        .all(|p| p[0] == p[1] && p[1] == p[2]));

    let eight = load_image(&write("8.png", png8(&img))).unwrap();
    assert_eq!(eight.data, img.data);
    let sixteen = load_image(&write("16.png", png16(&img))).unwrap();
    assert_eq!(
        sixteen.data, img.data,
        "16-bit PNG differs from its 8-bit source"
    );
}

#[test]
fn damaged_pictures_are_errors_that_name_the_file() {
    let img = face_picture();
    let jpeg = rgb_jpeg(&img, None);
    let png = png8(&img);
    let sos = jpeg.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    let mut state = 7u64;
    let garbage: Vec<u8> = (0..4000)
        .map(|_| common::splitmix64(&mut state) as u8)
        .collect();
    let mut header_then_garbage = jpeg[..sos + 14].to_vec();
    header_then_garbage.extend_from_slice(&garbage);
    let mut garbage_and_eoi = header_then_garbage.clone();
    garbage_and_eoi.extend_from_slice(&[0xFF, 0xD9]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.jpg",
            jpeg[..jpeg.len() * 2 / 5].to_vec(),
            "truncated JPEG",
        ),
        ("garbage.jpg", header_then_garbage, "corrupt JPEG"),
        ("garbage_eoi.jpg", garbage_and_eoi, "corrupt JPEG"),
        ("cut.png", png[..png.len() / 2].to_vec(), "PNG"),
        ("empty.jpg", Vec::new(), "empty file"),
        ("text.jpg", b"hello".to_vec(), "not a JPEG or PNG"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, says) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let Err(e) = load_image(&p) else {
            panic!("{name} was decoded as a picture")
        };
        let e = format!("{e:#}");
        assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
        assert!(e.contains(says), "{name}: {e:?} does not say {says:?}");
    }
    let e = format!("{:#}", load_image(dir.path()).unwrap_err());
    assert!(e.contains("is a directory"), "{e}");
    // The frame loop judges the same truncated bytes the same way.
    let mut frame_out = RgbImage::default();
    let e = agegender::decode::Decoder::new()
        .decode_jpeg(&jpeg[..jpeg.len() * 2 / 5], &mut frame_out)
        .unwrap_err();
    assert!(e.to_string().contains("truncated JPEG"), "{e}");
    // Bytes after the end-of-image marker (phones append data there) are not damage.
    let mut trailer = jpeg.clone();
    trailer.extend_from_slice(b"SEFT trailer data");
    let p = dir.path().join("trailer.jpg");
    std::fs::write(&p, trailer).unwrap();
    assert_eq!(load_image(&p).unwrap().width, img.width);
}

#[test]
fn huge_headers_are_refused_before_the_pixels_are_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let limit = MAX_JPEG_SIDE.to_string();
    for (name, bytes) in [
        ("huge.jpg", jpeg_claiming(20000, 20000)),
        ("huge.png", png_claiming(20000, 20000)),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let (result, largest) = largest_allocation(|| load_image(&p));
        let e = format!("{:#}", result.unwrap_err());
        assert!(e.contains("20000x20000") && e.contains(&limit), "{e}");
        assert!(
            largest < 16 << 20,
            "{name}: {largest} bytes allocated before the size was refused"
        );
    }
    // 1x1 is a picture like any other.
    let one = RgbImage {
        width: 1,
        height: 1,
        data: vec![200, 100, 50],
    };
    for (name, bytes) in [("one.jpg", rgb_jpeg(&one, None)), ("one.png", png8(&one))] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let img = load_image(&p).unwrap();
        assert_eq!((img.width, img.height), (1, 1), "{name}");
    }
}

// ---- through the binary -------------------------------------------------------------------

/// `agegender ARGS` with the committed models; exits with `code`, no panic.
fn agegender(args: &[&std::ffi::OsStr], code: i32) -> Output {
    let mut cmd = common::agegender_command();
    cmd.args(args);
    cmd.arg("--model").arg(common::classifier_model());
    cmd.arg("--detector").arg(common::blazeface_model(false));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn agegender_image(files: &[&Path], out: &Path, code: i32) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["image".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    args.extend(["--out".as_ref(), out.as_os_str()]);
    agegender(&args, code)
}

fn error_lines(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
        .lines()
        .filter(|l| l.starts_with("agegender: error: "))
        .map(String::from)
        .collect()
}

fn face_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lines_for<'a>(lines: &'a [serde_json::Value], file: &Path) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|l| l["source"] == file.to_str().unwrap())
        .collect()
}

#[test]
fn damaged_stills_get_one_error_each_and_the_others_are_labelled() {
    let img = face_picture();
    let jpeg = rgb_jpeg(&img, None);
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let good = put("good.jpg", &jpeg);
    let png = png8(&img);
    let mut garbage =
        jpeg[..jpeg.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap() + 14].to_vec();
    let mut state = 3u64;
    garbage.extend((0..3000).map(|_| common::splitmix64(&mut state) as u8));
    let subdir = dir.path().join("folder.jpg");
    std::fs::create_dir(&subdir).unwrap();
    let bad = [
        (
            put("truncated.jpg", &jpeg[..jpeg.len() * 2 / 5]),
            "truncated JPEG",
        ),
        (put("garbage.jpg", &garbage), "JPEG"),
        (put("cut.png", &png[..png.len() / 2]), "PNG"),
        (put("empty.jpg", b""), "empty file"),
        (put("huge.jpg", &jpeg_claiming(20000, 20000)), "8192"),
        (put("huge.png", &png_claiming(20000, 20000)), "8192"),
        (subdir, "is a directory"),
    ];
    let mut files: Vec<&Path> = bad.iter().map(|(p, _)| p.as_path()).collect();
    files.insert(3, &good); // the good one in the middle: what follows a failure still runs
    let out_dir = dir.path().join("out");
    let out = agegender_image(&files, &out_dir, 1);
    let errors = error_lines(&out);
    assert_eq!(errors.len(), bad.len(), "{errors:#?}");
    for ((path, says), line) in bad.iter().zip(&errors) {
        let named = format!("agegender: error: {}: ", path.display());
        assert!(
            line.starts_with(&named),
            "{line:?} does not start {named:?}"
        );
        assert!(line.contains(says), "{line:?} does not say {says:?}");
    }
    let lines = face_lines(&out);
    assert!(!lines.is_empty(), "no face line for the good picture");
    assert!(
        lines.iter().all(|l| l["source"] == good.to_str().unwrap()),
        "{lines:?}"
    );
    let pngs: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(pngs, ["good.png"]);
}

#[test]
fn unusual_stills_are_labelled_like_the_plain_picture() {
    let img = face_picture();
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: Vec<u8>| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let plain = put("plain.jpg", rgb_jpeg(&img, None));
    let cmyk = put("cmyk.jpg", cmyk_jpeg(&img));
    let grey = put("grey.jpg", grey_jpeg(&img));
    let sixteen = put("sixteen.png", png16(&img));
    let eight = put("eight.png", png8(&img));
    let phone = put(
        "phone.jpg",
        rgb_jpeg(&stored_for(&img, 6), Some(&exif_orientation(6))),
    );
    let one = RgbImage {
        width: 1,
        height: 1,
        data: vec![128, 128, 128],
    };
    let tiny = put("tiny.jpg", rgb_jpeg(&one, None));
    let files = [&plain, &cmyk, &grey, &sixteen, &eight, &phone, &tiny];
    let out_dir = dir.path().join("out");
    let out = agegender_image(
        &files.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
        &out_dir,
        0,
    );
    assert!(error_lines(&out).is_empty());
    let lines = face_lines(&out);
    let reference = lines_for(&lines, &plain);
    assert_eq!(reference.len(), 1, "{lines:#?}");
    let reference = reference[0];
    for (file, same_gender) in [
        (&cmyk, true),
        (&sixteen, true),
        (&eight, true),
        (&phone, true),
        (&grey, false),
    ] {
        let found = lines_for(&lines, file);
        assert_eq!(found.len(), 1, "{}: {found:?}", file.display());
        let iou = common::box_iou(common::face_box(found[0]), common::face_box(reference));
        assert!(
            iou > 0.8,
            "{}: box {:?} vs {:?}",
            file.display(),
            found[0]["box"],
            reference["box"]
        );
        if same_gender {
            assert_eq!(
                found[0]["gender"],
                reference["gender"],
                "{}",
                file.display()
            );
            let da = (found[0]["age"].as_f64().unwrap() - reference["age"].as_f64().unwrap()).abs();
            assert!(
                da <= 3.0,
                "{}: age {} vs {}",
                file.display(),
                found[0]["age"],
                reference["age"]
            );
        }
    }
    // The 16-bit PNG is the 8-bit one exactly.
    assert_eq!(
        lines_for(&lines, &sixteen)[0]["age"],
        lines_for(&lines, &eight)[0]["age"]
    );
    assert!(lines_for(&lines, &tiny).is_empty());
    for name in ["plain", "cmyk", "grey", "sixteen", "eight", "phone", "tiny"] {
        assert!(out_dir.join(format!("{name}.png")).is_file(), "{name}.png");
    }
    // The annotated phone picture is upright, as the plain one.
    let annotated = image::open(out_dir.join("phone.png")).unwrap();
    assert_eq!(
        (annotated.width(), annotated.height()),
        (img.width, img.height)
    );
}

#[test]
fn eval_names_an_unreadable_face_measures_the_others_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let faces = common::utk_test_faces(3, 18);
    for p in &faces {
        std::os::unix::fs::symlink(p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    // A UTKFace-named copy of the first face, cut short as a failed copy leaves it.
    let bytes = std::fs::read(&faces[0]).unwrap();
    let cut = dir.path().join("30_1_0_cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 5]).unwrap();
    let out = agegender(
        &["eval".as_ref(), "--faces".as_ref(), dir.path().as_os_str()],
        1,
    );
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "agegender: error: {}: truncated JPEG",
            cut.display()
        )),
        "{errors:?}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], 3);
    assert_eq!(report["unreadable"], 1);
}

// ---- the sources: sizes clamped before anything is sized from them --------------------------

/// An `.mjpeg` whose frame headers claim more than the decoder's limit, and a directory whose
/// only picture does: an error naming the file and the limit at open, never buffers of
/// w·h·3 bytes. A file with some such frames leaves them out and sizes from the others.
#[test]
fn sources_refuse_frame_sizes_beyond_the_decoder_limit() {
    use agegender::capture::files::{DirSource, MjpegFileSource};
    use agegender::capture::FrameSource;
    let tmp = tempfile::tempdir().unwrap();
    let huge = jpeg_claiming(20000, 16);
    let small = rgb_jpeg(&common::background(64, 48), None);

    let all_huge = tmp.path().join("huge.mjpeg");
    std::fs::write(&all_huge, [huge.clone(), huge.clone()].concat()).unwrap();
    let e = match MjpegFileSource::open(&all_huge, 0.0, false) {
        Ok(_) => panic!("a file of 20000-pixel frames opened"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("huge.mjpeg") && e.contains("20000x16") && e.contains("8192"),
        "{e}"
    );

    let mixed = tmp.path().join("mixed.mjpeg");
    std::fs::write(
        &mixed,
        [small.clone(), huge.clone(), small.clone()].concat(),
    )
    .unwrap();
    let src = MjpegFileSource::open(&mixed, 0.0, false).unwrap();
    assert_eq!(src.frame_size(), (64, 48));

    let dir = tmp.path().join("pictures");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("huge.png"), png_claiming(9000, 9000)).unwrap();
    let e = match DirSource::open(&dir, 0.0, false) {
        Ok(_) => panic!("a directory of one 9000x9000 picture opened"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("huge.png") && e.contains("9000x9000") && e.contains("8192"),
        "{e}"
    );
    std::fs::write(dir.join("small.jpg"), &small).unwrap();
    let src = DirSource::open(&dir, 0.0, false).unwrap();
    assert_eq!(src.frame_size(), (64, 48));
}

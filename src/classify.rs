//! Classify: the age/gender ResNet (int8 ONNX) through tract.
//!
//! Model contract (see models/README.md): input `input` f32 [1,3,112,112], RGB, raw 0..255
//! (normalisation is inside the model); outputs `gender` [1,2] = softmax(P male, P female) and
//! `age` [1,101] = softmax over ages 0..=100. Age is the expectation of that distribution.

/// The seed's eight Adience buckets: label, first and last age that belongs to it
/// (the ages between the published buckets go to the nearest one).
pub const AGE_BUCKETS: [(&str, u32, u32); 8] = [
    ("0-2", 0, 3),
    ("4-6", 4, 6),
    ("8-12", 7, 13),
    ("15-20", 14, 22),
    ("25-32", 23, 34),
    ("38-43", 35, 44),
    ("48-53", 45, 55),
    ("60+", 56, 100),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Gender {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
}

/// What the classifier says about one face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attributes {
    pub gender: Gender,
    /// Probability of the reported gender (≥ 0.5).
    pub gender_p: f32,
    /// Probability the face is female, before thresholding.
    pub p_female: f32,
    /// Expected age in years.
    pub age: f32,
    /// Index into [`AGE_BUCKETS`].
    pub bucket: usize,
    /// Probability mass of the predicted age distribution inside that bucket.
    pub bucket_p: f32,
}

//! Deterministic embeddings: similar texts get similar vectors, so a semantic cache can be tested
//! without a model.
//!
//! Each vector is a signed feature hash of the text's character trigrams, L2-normalised. Texts that
//! share most trigrams (case, punctuation and small edits aside) have a cosine similarity near 1;
//! unrelated texts land near 0.

use crate::request::fnv1a;

/// The embedding of `text` with `dimensions` components.
pub fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.max(1);
    let mut v = vec![0f32; dimensions];
    let normalised: Vec<u8> = text
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || b.is_ascii_whitespace() || !b.is_ascii())
        .map(|b| b.to_ascii_lowercase())
        .collect();
    for word in normalised
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
    {
        let padded = [b" ", word, b" "].concat();
        for gram in padded.windows(3) {
            let h = fnv1a(gram);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % dimensions as u64) as usize] += sign;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denom = norm(a) * norm(b);
    if denom == 0.0 { 0.0 } else { dot / denom }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_are_close_and_unrelated_texts_are_not() {
        let a = embed("What is the capital of France?", 256);
        let b = embed("what is the capital of france", 256);
        let c = embed("What's the capital city of France?", 256);
        let d = embed("Explain ownership and borrowing in Rust.", 256);
        assert!((cosine(&a, &b) - 1.0).abs() < 1e-5);
        assert!(cosine(&a, &c) > 0.75, "{}", cosine(&a, &c));
        assert!(cosine(&a, &d) < 0.3, "{}", cosine(&a, &d));
        assert_eq!(a, embed("What is the capital of France?", 256));
    }
}

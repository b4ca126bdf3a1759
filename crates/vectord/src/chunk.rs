//! Long texts become overlapping word windows. A chunk's id is `<doc_id>#<n>`: stable as
//! long as the document's text is, so re-embedding an unchanged document is a cache hit.

use sha2::{Digest, Sha256};

/// Split `text` into windows of at most `max_words` words, each sharing `overlap` words
/// with the previous one. A short text is one chunk; an empty text is one empty chunk.
pub fn chunk_words(text: &str, max_words: usize, overlap: usize) -> Vec<String> {
    let max_words = max_words.max(1);
    let step = max_words.saturating_sub(overlap).max(1);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= max_words {
        return vec![words.join(" ")];
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + max_words).min(words.len());
        chunks.push(words[start..end].join(" "));
        if end == words.len() {
            return chunks;
        }
        start += step;
    }
}

pub fn chunk_id(doc_id: &str, n: usize) -> String {
    format!("{doc_id}#{n}")
}

/// The stable 63-bit key of a chunk id: the first 8 bytes of its SHA-256, big-endian,
/// top bit cleared so engines that store signed 64-bit ids agree. Persisted in every
/// index version and Lance table: never change it.
pub fn chunk_key(chunk_id: &str) -> u64 {
    let digest = Sha256::digest(chunk_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) & (u64::MAX >> 1)
}

/// `chunk_key(&chunk_id(doc_id, 0))` without building the id: the key of a document's
/// first (for short documents, only) chunk. Hybrid search maps every SQL candidate
/// through this, tens of thousands per query.
pub fn first_chunk_key(doc_id: &str) -> u64 {
    let digest = Sha256::new().chain_update(doc_id.as_bytes()).chain_update(b"#0").finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) & (u64::MAX >> 1)
}

/// Hex SHA-256 of a chunk's text: the content half of the refresh diff.
pub fn content_hash(text: &str) -> String {
    hex_lower(&Sha256::digest(text.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every chunk of a set of documents, column-wise, in document order.
#[derive(Debug, Default, PartialEq)]
pub struct DocumentChunks {
    /// Position of the chunk's document in the input.
    pub doc_row: Vec<usize>,
    pub chunk_no: Vec<i32>,
    pub text: Vec<String>,
    pub key: Vec<u64>,
    pub content_hash: Vec<String>,
}

/// Chunk documents given as (doc id, text) rows. A row without an id is skipped; a
/// missing text is empty. A text under `max_words` words and `4 * max_words` characters
/// is kept verbatim as one chunk (its content hash, hence its cached vector, stays what
/// it was); longer texts become overlapping windows (`chunk_words`).
pub fn chunk_documents<'a>(rows: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>, max_words: usize, overlap: usize) -> DocumentChunks {
    let mut out = DocumentChunks::default();
    for (row, (doc_id, text)) in rows.enumerate() {
        let Some(doc_id) = doc_id else { continue };
        let text = text.unwrap_or("");
        let short = text.chars().count() < 4 * max_words && text.matches(' ').count() < max_words;
        let pieces = if short { vec![text.to_string()] } else { chunk_words(text, max_words, overlap) };
        for (n, piece) in pieces.into_iter().enumerate() {
            out.doc_row.push(row);
            out.chunk_no.push(n as i32);
            out.key.push(chunk_key(&chunk_id(doc_id, n)));
            out.content_hash.push(content_hash(&piece));
            out.text.push(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chunk_keys_are_the_persisted_sha256_prefix() {
        // the derivation every stored index version and Lance table was written with
        let digest = Sha256::digest(b"W-1#0");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) & (u64::MAX >> 1);
        assert_eq!(chunk_key("W-1#0"), expected);
        assert!(chunk_key("anything") < 1 << 63);
        assert_eq!(content_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn documents_keep_short_texts_verbatim_and_skip_rows_without_id() {
        let long = (0..50).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let rows = [(Some("a"), Some("  two  spaces ")), (None, Some("no id")), (Some("b"), Some(long.as_str())), (Some("c"), None)];
        let chunks = chunk_documents(rows.into_iter(), 20, 5);
        assert_eq!(chunks.text[0], "  two  spaces ", "a short text is embedded as written");
        assert_eq!(chunks.doc_row, vec![0, 2, 2, 2, 3]);
        assert_eq!(chunks.chunk_no, vec![0, 0, 1, 2, 0]);
        assert_eq!(chunks.key[1], chunk_key("b#0"));
        assert_eq!(chunks.text[4], "");
    }

    proptest! {
        #[test]
        fn first_chunk_key_is_the_key_of_chunk_zero(doc_id in ".{0,40}") {
            prop_assert_eq!(first_chunk_key(&doc_id), chunk_key(&chunk_id(&doc_id, 0)));
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_words("certified  welder\nToledo", 10, 2), vec!["certified welder Toledo"]);
    }

    proptest! {
        #[test]
        fn every_word_is_covered_and_windows_overlap(n in 0usize..400, max in 1usize..50, overlap in 0usize..60) {
            let text: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let chunks = chunk_words(&text.join(" "), max, overlap);
            let mut seen = std::collections::BTreeSet::new();
            for c in &chunks {
                let words: Vec<&str> = c.split(' ').filter(|w| !w.is_empty()).collect();
                prop_assert!(words.len() <= max);
                seen.extend(words.iter().map(|w| w.to_string()));
            }
            prop_assert_eq!(seen.len(), n);
            for pair in chunks.windows(2) {
                let shared = pair[1].split(' ').filter(|w| pair[0].split(' ').any(|x| x == *w)).count();
                prop_assert_eq!(shared, overlap.min(max - 1));
            }
        }
    }
}

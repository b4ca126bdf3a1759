//! Long texts become overlapping word windows. A chunk's id is `<doc_id>#<n>`: stable as
//! long as the document's text is, so re-embedding an unchanged document is a cache hit.

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

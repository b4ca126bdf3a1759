//! Point lookups by key: the rows of a dataset whose key column equals one of a few given
//! values, in the order they were asked for.
//!
//! Search answers end with "fetch these ten workers' details". As SQL that is
//! `WHERE CAST(worker_id AS VARCHAR) IN (...)`: a scan of every row, ~5–8 ms at 500K rows,
//! paid on every search. A pinned (hot-cached) table instead gets a hash index over its
//! key column, built once per table version, and a lookup gathers the matching rows
//! directly. Keys compare as text, exactly as `CAST(key AS VARCHAR)` does, so the answer
//! is the same rows the SQL would give; a key the table lacks is simply absent.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use lakehouse_shared::{LakehouseError, Result};

/// Ends a chain of rows sharing one hash.
const END: u32 = u32::MAX;

/// At most this many (key, value, ...) combinations are looked up in a compound index;
/// a lookup naming more (many spellings of many columns) tests the other columns row
/// by row instead.
pub const MAX_COMPOUND_KEYS: usize = 256;

/// A hash index over one column of a table held in memory, or over a few columns
/// together (a compound key: role + city + state).
///
/// One column answers "these ten workers' details". A compound key answers the
/// recruiter's usual filter: indexed by city alone, a large city's 30K rows are walked
/// and each tested for a role and a state (~1 ms at 500K rows) to keep ~100; indexed by
/// the three together, the ~100 are found directly.
pub struct KeyIndex {
    batches: Arc<[RecordBatch]>,
    /// The indexed columns' names, the key column first.
    names: Vec<String>,
    /// Each indexed column per batch, as text: a text column as it is, any other cast
    /// to Utf8 (keys compare as `CAST(key AS VARCHAR)` does).
    columns: Vec<Vec<ArrayRef>>,
    /// Global row at which each batch starts (and the total row count last).
    starts: Vec<u32>,
    /// hash(key values) -> the first row (in table order) with that hash.
    first: std::collections::HashMap<u64, u32, foldhash::fast::FixedState>,
    /// row -> the next row with the same hash, or END.
    next: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

impl KeyIndex {
    /// Index `batches` by `key_columns` together (any types that cast to text). A row
    /// with a NULL in any of them is not indexed: NULL equals nothing.
    pub fn build(batches: Arc<[RecordBatch]>, schema: &SchemaRef, key_columns: &[&str]) -> Result<Self> {
        let columns = key_columns
            .iter()
            .map(|name| {
                let c = column_index(schema, name)?;
                batches.iter().map(|b| as_text(b.column(c))).collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let mut starts = Vec::with_capacity(batches.len() + 1);
        let mut total = 0u64;
        for b in batches.iter() {
            starts.push(total as u32);
            total += b.num_rows() as u64;
        }
        if total >= END as u64 {
            return Err(LakehouseError::invalid("a table of more than 4 billion rows cannot be indexed for lookups"));
        }
        starts.push(total as u32);
        let hasher = foldhash::fast::FixedState::default();
        let mut first = std::collections::HashMap::with_hasher(hasher.clone());
        let mut next = vec![END; total as usize];
        let texts = text_views(&columns);
        // Walk backwards so each chain lists its rows in table order.
        for (batch, views) in texts.iter().enumerate().rev() {
            for row in (0..batches[batch].num_rows()).rev() {
                let Some(hash) = hash_values(&hasher, views.iter().map(|view| view.value(row))) else {
                    continue;
                };
                let global = starts[batch] + row as u32;
                let head = first.entry(hash).or_insert(END);
                next[global as usize] = *head;
                *head = global;
            }
        }
        let names = key_columns.iter().map(|c| c.to_string()).collect();
        Ok(Self { batches, names, columns, starts, first, next, hasher })
    }

    /// (batch, row) of every row whose indexed columns hold `values` (one per column), in
    /// table order.
    fn rows_with(&self, texts: &[Vec<Text<'_>>], values: &[&str], out: &mut Vec<(usize, usize)>) {
        let hash = hash_values(&self.hasher, values.iter().map(|v| Some(*v))).expect("no NULL among the values asked");
        let mut row = self.first.get(&hash).copied().unwrap_or(END);
        while row != END {
            let batch = self.starts.partition_point(|&s| s <= row) - 1;
            let local = (row - self.starts[batch]) as usize;
            if texts[batch].iter().zip(values).all(|(t, v)| t.value(local) == Some(*v)) {
                out.push((batch, local));
            }
            row = self.next[row as usize];
        }
    }

    /// (batch, row) of every row whose key column holds one of `wanted` and whose other
    /// indexed columns hold one of the values `equal` gives for them: grouped by key in
    /// the order asked (a key asked twice counts once), rows of one key in table order.
    fn positions(&self, wanted: &[&str], equal: &[(String, Vec<String>)]) -> Result<Vec<(usize, usize)>> {
        let covered = self.names[1..]
            .iter()
            .map(|name| {
                let (_, values) = equal.iter().find(|(c, _)| c == name).ok_or_else(|| {
                    LakehouseError::Internal(format!("lookup through the index over {:?} names no values for {name:?}", self.names))
                })?;
                Ok(distinct(values.iter().map(String::as_str)))
            })
            .collect::<Result<Vec<_>>>()?;
        let texts = text_views(&self.columns);
        let mut out = Vec::with_capacity(wanted.len());
        for key in distinct(wanted.iter().copied()) {
            let group = out.len();
            let mut values = vec![key];
            let combinations = self.each_combination(&covered, &mut values, &texts, &mut out);
            if combinations > 1 {
                out[group..].sort_unstable(); // several spellings: back to table order
            }
        }
        Ok(out)
    }

    /// Appends the rows of every combination of `covered` values after `prefix`; returns
    /// how many combinations there were.
    fn each_combination<'a>(&self, covered: &[Vec<&'a str>], prefix: &mut Vec<&'a str>, texts: &[Vec<Text<'_>>],
                            out: &mut Vec<(usize, usize)>) -> usize {
        let Some((values, rest)) = covered.split_first() else {
            self.rows_with(texts, prefix, out);
            return 1;
        };
        let mut combinations = 0;
        for &value in values {
            prefix.push(value);
            combinations += self.each_combination(rest, prefix, texts, out);
            prefix.pop();
        }
        combinations
    }

    /// The rows whose key column holds one of `wanted` (see [`positions`](Self::positions))
    /// and whose text columns in `equal` also hold one of the values given for them,
    /// with only `columns` (every column when empty). Columns the index covers are
    /// matched through it; the others are tested on each of those rows in place, and
    /// only the rows that pass are copied out.
    pub fn take(&self, schema: &SchemaRef, wanted: &[&str], columns: &[String], equal: &[(String, Vec<String>)]) -> Result<RecordBatch> {
        let projection = projection(schema, columns)?;
        let mut positions = self.positions(wanted, equal)?;
        // Each column the index covers matched the first pair naming it; any other pair
        // (another column, or the same one named again) is tested here.
        let mut matched: Vec<&str> = self.names[1..].iter().map(String::as_str).collect();
        for (name, values) in equal {
            if let Some(i) = matched.iter().position(|m| m == name) {
                matched.swap_remove(i);
                continue;
            }
            self.retain_equal(&mut positions, column_index(schema, name)?, name, values)?;
        }
        let arrays = projection
            .iter()
            .map(|&c| {
                let sources: Vec<&dyn Array> = self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                if sources.is_empty() {
                    return Ok(arrow::array::new_empty_array(schema.field(c).data_type()));
                }
                interleave(&sources, &positions)
            })
            .collect::<std::result::Result<Vec<ArrayRef>, arrow::error::ArrowError>>()?;
        let projected = Arc::new(schema.project(&projection)?);
        Ok(RecordBatch::try_new(projected, arrays)?)
    }

    /// Keeps the positions whose value in `column` is one of `values` (NULL equals
    /// nothing). Only text columns: elsewhere "equal" depends on the engine's casts.
    fn retain_equal(&self, positions: &mut Vec<(usize, usize)>, column: usize, name: &str, values: &[String]) -> Result<()> {
        let texts = self
            .batches
            .iter()
            .map(|b| Text::of(b.column(column)).ok_or_else(|| not_text(name)))
            .collect::<Result<Vec<_>>>()?;
        positions.retain(|&(batch, row)| texts[batch].value(row).is_some_and(|v| values.iter().any(|w| w == v)));
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.next.len()
    }
}

/// The columns a lookup of `keys` in `key_column`, narrowed by `equal`, is best served
/// by: the key column, then each distinct text column of `equal` while the combinations
/// of their values stay within [`MAX_COMPOUND_KEYS`]. Columns left out (not text, or
/// too many combinations) are tested row by row, as [`KeyIndex::take`] does.
pub fn index_columns(schema: &Schema, key_column: &str, keys: usize, equal: &[(String, Vec<String>)]) -> Vec<String> {
    let mut names = vec![key_column.to_string()];
    let mut combinations = keys.max(1);
    for (name, values) in equal {
        let text = schema.field_with_name(name).is_ok_and(|f| Text::is_text(f.data_type()));
        let grown = combinations.saturating_mul(distinct(values.iter()).len().max(1));
        if text && !names.contains(name) && grown <= MAX_COMPOUND_KEYS {
            names.push(name.clone());
            combinations = grown;
        }
    }
    names
}

/// `items` without repeats, in first-seen order.
fn distinct<T: Eq + Hash + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|item| seen.insert(*item)).collect()
}

/// The hash of one row's indexed values, or None when one is NULL (such a row is not
/// indexed: NULL equals nothing). Building and probing both hash through here.
fn hash_values<'a>(hasher: &foldhash::fast::FixedState, values: impl Iterator<Item = Option<&'a str>>) -> Option<u64> {
    let mut state = hasher.build_hasher();
    for value in values {
        value?.hash(&mut state); // str's Hash ends each value: ("ab", "c") != ("a", "bc")
    }
    Some(state.finish())
}

/// `array` as text: a text array as it is, any other cast to Utf8.
fn as_text(array: &ArrayRef) -> Result<ArrayRef> {
    if Text::is_text(array.data_type()) {
        return Ok(array.clone());
    }
    Ok(cast(array, &DataType::Utf8)?)
}

/// In-place readers of `columns` ([column][batch]), regrouped per batch ([batch][column]).
fn text_views(columns: &[Vec<ArrayRef>]) -> Vec<Vec<Text<'_>>> {
    let batches = columns.first().map_or(0, Vec::len);
    (0..batches)
        .map(|b| columns.iter().map(|c| Text::of(&c[b]).expect("indexed columns are text")).collect())
        .collect()
}

fn not_text(name: &str) -> LakehouseError {
    LakehouseError::invalid(format!("column {name:?} is not text"))
}

/// A string column read in place, whichever of Arrow's string layouts it has.
enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn is_text(kind: &DataType) -> bool {
        matches!(kind, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
    }

    fn of(array: &'a ArrayRef) -> Option<Self> {
        let any = array.as_any();
        match array.data_type() {
            DataType::Utf8 => any.downcast_ref().map(Text::Utf8),
            DataType::LargeUtf8 => any.downcast_ref().map(Text::Large),
            DataType::Utf8View => any.downcast_ref().map(Text::View),
            _ => None,
        }
    }

    fn value(&self, row: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Text::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Text::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

fn column_index(schema: &Schema, name: &str) -> Result<usize> {
    schema
        .index_of(name)
        .map_err(|_| LakehouseError::invalid(format!("no column {name:?} (columns: {})", column_names(schema))))
}

fn column_names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Column positions of `columns` (all columns when empty), checked against the schema.
pub(crate) fn projection(schema: &Schema, columns: &[String]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..schema.fields().len()).collect());
    }
    columns.iter().map(|c| column_index(schema, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::Field;
    use proptest::prelude::*;

    /// Row `i`'s shift: NULL for some rows, else day or night.
    fn shift(i: usize) -> Option<&'static str> {
        match i % 7 {
            3 => None,
            r if r % 2 == 0 => Some("day"),
            _ => Some("night"),
        }
    }

    /// Row `i`'s site: NULL for some rows, else one of four spellings of three places.
    fn site(i: usize) -> Option<&'static str> {
        [Some("Toledo"), Some("TOLEDO"), Some("Akron"), None, Some("Dayton")][i % 5]
    }

    fn table(ids: &[Option<i64>]) -> (SchemaRef, Arc<[RecordBatch]>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("worker_id", DataType::Int64, true),
            Field::new("score", DataType::Float64, false),
            Field::new("shift", DataType::Utf8View, true),
            Field::new("site", DataType::Utf8, true),
        ]));
        // Three batches of uneven sizes, so positions cross batch boundaries.
        let cut = [0, ids.len() / 3, ids.len() / 2, ids.len()];
        let batches: Vec<RecordBatch> = cut
            .windows(2)
            .map(|w| {
                let part = &ids[w[0]..w[1]];
                let scores: Vec<f64> = (w[0]..w[1]).map(|i| i as f64).collect();
                RecordBatch::try_new(schema.clone(), vec![
                    Arc::new(Int64Array::from(part.to_vec())),
                    Arc::new(Float64Array::from(scores)),
                    Arc::new(StringViewArray::from_iter((w[0]..w[1]).map(shift))),
                    Arc::new(StringArray::from_iter((w[0]..w[1]).map(site))),
                ])
                .unwrap()
            })
            .collect();
        (schema, batches.into())
    }

    proptest! {
        /// The lookup returns exactly the rows `WHERE CAST(worker_id AS VARCHAR) IN (keys)`
        /// selects, grouped in the order the keys were asked, duplicates in table order.
        #[test]
        fn a_lookup_returns_the_rows_an_in_list_filter_selects(
            ids in proptest::collection::vec(proptest::option::weighted(0.95, 0i64..40), 0..200),
            wanted in proptest::collection::vec(0i64..50, 0..12),
        ) {
            let (schema, batches) = table(&ids);
            let index = KeyIndex::build(batches, &schema, &["worker_id"]).unwrap();
            let keys: Vec<String> = wanted.iter().map(|k| k.to_string()).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut expected = Vec::new();
            let mut asked = std::collections::HashSet::new();
            for k in &wanted {
                if asked.insert(*k) {
                    expected.extend(ids.iter().enumerate().filter(|(_, id)| **id == Some(*k)).map(|(i, _)| i));
                }
            }
            let scores = |equal: &[(String, Vec<String>)]| {
                let got = index.take(&schema, &refs, &["score".to_string()], equal).unwrap();
                got.column(0).as_any().downcast_ref::<Float64Array>().unwrap().values().iter().map(|&s| s as usize).collect::<Vec<_>>()
            };
            prop_assert_eq!(scores(&[]), expected.clone());
            // `AND shift IN ('night')`: the same rows minus those whose shift differs or is NULL
            let night: Vec<usize> = expected.into_iter().filter(|&i| shift(i) == Some("night")).collect();
            prop_assert_eq!(scores(&[("shift".to_string(), vec!["night".to_string()])]), night);
        }
    }

    proptest! {
        /// A compound index over (worker_id, shift, site) answers exactly as the worker_id
        /// index with shift and site tested row by row, whatever spellings, repeats and
        /// NULLs the lookup names, and in the same order.
        #[test]
        fn a_compound_index_returns_the_rows_and_order_of_testing_each_row(
            ids in proptest::collection::vec(proptest::option::weighted(0.95, 0i64..8), 0..300),
            wanted in proptest::collection::vec(0i64..10, 0..6),
            shifts in proptest::collection::vec(prop::sample::select(vec!["day", "night", "swing"]), 0..3),
            sites in proptest::collection::vec(prop::sample::select(vec!["Toledo", "TOLEDO", "Akron", "Dayton", "Lima"]), 0..4),
            again in proptest::option::of(prop::sample::select(vec!["Toledo", "Akron"])),
        ) {
            let (schema, batches) = table(&ids);
            let keys: Vec<String> = wanted.iter().map(|k| k.to_string()).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut equal = vec![
                ("shift".to_string(), shifts.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                ("site".to_string(), sites.iter().map(|s| s.to_string()).collect()),
            ];
            if let Some(site) = again {
                equal.push(("site".to_string(), vec![site.to_string()])); // named twice: both must hold
            }
            let scores = |index: &KeyIndex| {
                let got = index.take(&schema, &refs, &["score".to_string()], &equal).unwrap();
                got.column(0).as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec()
            };
            let names = index_columns(&schema, "worker_id", keys.len(), &equal);
            prop_assert_eq!(&names, &["worker_id", "shift", "site"]);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let compound = KeyIndex::build(batches.clone(), &schema, &names).unwrap();
            let single = KeyIndex::build(batches, &schema, &["worker_id"]).unwrap();
            prop_assert_eq!(scores(&compound), scores(&single));
        }
    }

    #[test]
    fn a_compound_index_leaves_non_text_columns_and_too_many_combinations_to_the_row_test() {
        let (schema, _) = table(&[Some(1)]);
        let many: Vec<String> = (0..MAX_COMPOUND_KEYS).map(|i| i.to_string()).collect();
        let equal = vec![
            ("score".to_string(), vec!["1".to_string()]),
            ("shift".to_string(), vec!["day".to_string(), "night".to_string()]),
            ("site".to_string(), many),
        ];
        assert_eq!(index_columns(&schema, "worker_id", 1, &equal), ["worker_id", "shift"]);
    }

    #[test]
    fn an_unknown_column_is_named_with_the_columns_there_are() {
        let (schema, batches) = table(&[Some(1)]);
        let err = KeyIndex::build(batches.clone(), &schema, &["id"]).err().unwrap().to_string();
        assert!(err.contains("\"id\"") && err.contains("worker_id, score"), "{err}");
        let index = KeyIndex::build(batches, &schema, &["worker_id"]).unwrap();
        assert!(index.take(&schema, &["1"], &["nope".to_string()], &[]).is_err());
        let not_text = index.take(&schema, &["1"], &[], &[("score".to_string(), vec!["0".to_string()])]).err().unwrap();
        assert!(not_text.to_string().contains("\"score\" is not text"), "{not_text}");
    }
}

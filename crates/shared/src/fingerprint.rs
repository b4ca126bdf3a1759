//! Schema fingerprints (ADR: idempotent register).
//!
//! The fingerprint is SHA-256 over the ordered (position, name, type, nullability)
//! tuples of the *storage* schema, so a dataset that arrives as CSV, Parquet or an
//! Arrow table with the same columns gets the same fingerprint, and any change of a
//! name, a type, nullability or column order gives a different one.

use std::fmt;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of the canonical schema text.
pub fn fingerprint(schema: &Schema) -> String {
    let mut hasher = Sha256::new();
    for (position, field) in schema.fields().iter().enumerate() {
        // One line per column; '\u{1f}' cannot appear in the canonical type text.
        hasher.update(format!("{position}\u{1f}{}\u{1f}{}\n", field.name(), column_signature(field)));
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Type + nullability of a column, in the canonical text the fingerprint hashes.
pub fn column_signature(field: &Field) -> String {
    let null = if field.is_nullable() { "null" } else { "not null" };
    format!("{} {null}", canonical_type(field.data_type()))
}

/// Type names independent of physical encodings that store the same values
/// (Utf8 / LargeUtf8 / Utf8View are all `string`).
pub fn canonical_type(dt: &DataType) -> String {
    use DataType::*;
    match dt {
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary".into(),
        Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(_) => format!("timestamp[{unit},utc]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            format!("list<{}>", column_signature(f))
        }
        Struct(fields) => {
            let inner: Vec<String> =
                fields.iter().map(|f| format!("{}: {}", f.name(), column_signature(f))).collect();
            format!("struct<{}>", inner.join(", "))
        }
        Map(entries, _) => format!("map<{}>", column_signature(entries)),
        Dictionary(_, value) => canonical_type(value),
        other => other.to_string().to_lowercase(),
    }
}

/// One column-level difference between a registered schema and an incoming one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ColumnDiff {
    Added { column: String, signature: String },
    Removed { column: String, signature: String },
    Changed { column: String, existing: String, incoming: String },
    Moved { column: String, existing_position: usize, incoming_position: usize },
}

/// Column-level difference between two schemas (what a 409 explains).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDiff {
    pub columns: Vec<ColumnDiff>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return write!(f, "no column differences");
        }
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| match c {
                ColumnDiff::Added { column, signature } => format!("+{column} ({signature})"),
                ColumnDiff::Removed { column, signature } => format!("-{column} ({signature})"),
                ColumnDiff::Changed { column, existing, incoming } => {
                    format!("~{column} ({existing} -> {incoming})")
                }
                ColumnDiff::Moved { column, existing_position, incoming_position } => {
                    format!("{column} moved from position {existing_position} to {incoming_position}")
                }
            })
            .collect();
        write!(f, "column changes: {}", parts.join(", "))
    }
}

/// What changed from `existing` to `incoming`, column by column.
pub fn schema_diff(existing: &Schema, incoming: &Schema) -> SchemaDiff {
    let mut columns = Vec::new();
    for (pos, field) in existing.fields().iter().enumerate() {
        match incoming.index_of(field.name()) {
            Err(_) => columns.push(ColumnDiff::Removed {
                column: field.name().clone(),
                signature: column_signature(field),
            }),
            Ok(new_pos) => {
                let (old_sig, new_sig) = (column_signature(field), column_signature(incoming.field(new_pos)));
                if old_sig != new_sig {
                    columns.push(ColumnDiff::Changed { column: field.name().clone(), existing: old_sig, incoming: new_sig });
                } else if pos != new_pos {
                    columns.push(ColumnDiff::Moved {
                        column: field.name().clone(),
                        existing_position: pos,
                        incoming_position: new_pos,
                    });
                }
            }
        }
    }
    for field in incoming.fields() {
        if existing.index_of(field.name()).is_err() {
            columns.push(ColumnDiff::Added { column: field.name().clone(), signature: column_signature(field) });
        }
    }
    SchemaDiff { columns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn schema(cols: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(cols.iter().map(|(n, t, null)| Field::new(*n, t.clone(), *null)).collect::<Vec<_>>())
    }

    #[test]
    fn string_encodings_share_a_fingerprint() {
        let a = schema(&[("name", DataType::Utf8, true)]);
        let b = schema(&[("name", DataType::LargeUtf8, true)]);
        let c = schema(&[("name", DataType::Utf8View, true)]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn name_type_nullability_and_order_each_change_the_fingerprint() {
        let base = schema(&[("id", DataType::Int64, false), ("name", DataType::Utf8, true)]);
        let variants = [
            schema(&[("ID", DataType::Int64, false), ("name", DataType::Utf8, true)]),
            schema(&[("id", DataType::Int32, false), ("name", DataType::Utf8, true)]),
            schema(&[("id", DataType::Int64, true), ("name", DataType::Utf8, true)]),
            schema(&[("name", DataType::Utf8, true), ("id", DataType::Int64, false)]),
        ];
        for v in &variants {
            assert_ne!(fingerprint(&base), fingerprint(v), "{v:?}");
        }
    }

    #[test]
    fn nested_field_changes_change_the_fingerprint() {
        let inner = |t: DataType| {
            schema(&[("tags", DataType::List(Arc::new(Field::new("item", t, true))), true)])
        };
        assert_ne!(fingerprint(&inner(DataType::Utf8)), fingerprint(&inner(DataType::Int64)));
    }

    #[test]
    fn diff_names_added_removed_and_changed_columns() {
        let old = schema(&[("id", DataType::Int64, false), ("city", DataType::Utf8, true)]);
        let new = schema(&[("id", DataType::Utf8, false), ("zip", DataType::Utf8, true)]);
        let diff = schema_diff(&old, &new);
        assert_eq!(diff.columns.len(), 3);
        let text = diff.to_string();
        assert!(text.contains("~id (int64 not null -> string not null)"), "{text}");
        assert!(text.contains("-city"), "{text}");
        assert!(text.contains("+zip"), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn fingerprint_is_stable_and_injective_on_names(names in proptest::collection::btree_set("[a-z]{1,8}", 1..6)) {
            let names: Vec<String> = names.into_iter().collect();
            let s = Schema::new(names.iter().map(|n| Field::new(n, DataType::Int64, true)).collect::<Vec<_>>());
            proptest::prop_assert_eq!(fingerprint(&s), fingerprint(&s.clone()));
            let renamed = Schema::new(names.iter().map(|n| Field::new(format!("{n}_x"), DataType::Int64, true)).collect::<Vec<_>>());
            proptest::prop_assert_ne!(fingerprint(&s), fingerprint(&renamed));
        }
    }
}

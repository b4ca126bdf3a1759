//! How Arrow data is shaped before it is stored.
//!
//! Delta tables hold a subset of Arrow's types. Rather than reject a table that uses
//! another encoding, we map each column to the closest lossless storage type (and
//! say so in docs/DECISIONS.md). The same mapping feeds the fingerprint, so the
//! fingerprint describes what is actually stored.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use sha2::{Digest, Sha256};

use crate::{LakehouseError, Result};

/// Name Parquet and Delta give list items; using it up front makes round trips exact.
const LIST_ITEM: &str = "element";

/// The schema a table is stored with (see module docs).
pub fn storage_schema(schema: &Schema) -> Result<Schema> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| storage_field(f))
        .collect::<Result<Vec<_>>>()?;
    // Delta keeps no schema-level metadata; carrying it would only make batch and table
    // schemas disagree.
    Ok(Schema::new(fields))
}

fn storage_field(field: &Field) -> Result<Field> {
    let dt = storage_type(field.data_type()).map_err(|reason| {
        LakehouseError::InvalidInput(format!("column '{}' cannot be stored: {reason}", field.name()))
    })?;
    Ok(Field::new(field.name(), dt, field.is_nullable()).with_metadata(field.metadata().clone()))
}

fn storage_type(dt: &DataType) -> std::result::Result<DataType, String> {
    use DataType::*;
    Ok(match dt {
        Null => Utf8,
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        // Delta stores microseconds; zoned times are stored as UTC instants.
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| Arc::from("UTC"))),
        Date64 => Date32,
        Time32(_) | Time64(_) | Interval(_) => Utf8,
        Duration(_) => Int64,
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        Decimal256(p, _) => return Err(format!("decimal precision {p} exceeds 38")),
        Dictionary(_, value) => storage_type(value)?,
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(Arc::new(Field::new(LIST_ITEM, storage_type(f.data_type())?, f.is_nullable())))
        }
        Struct(fields) => Struct(storage_fields(fields)?),
        Map(entries, sorted) => Map(Arc::new(storage_field_ref(entries)?), *sorted),
        Union(..) | RunEndEncoded(..) => return Err(format!("type {dt} has no Delta equivalent")),
        other => other.clone(),
    })
}

fn storage_fields(fields: &Fields) -> std::result::Result<Fields, String> {
    fields.iter().map(storage_field_ref).collect::<std::result::Result<Vec<_>, _>>().map(Fields::from)
}

fn storage_field_ref(f: &FieldRef) -> std::result::Result<Field, String> {
    Ok(Field::new(f.name(), storage_type(f.data_type())?, f.is_nullable()).with_metadata(f.metadata().clone()))
}

/// Cast a batch to its storage schema. Casts are checked: a value that would not
/// survive (e.g. a u64 overflowing) is an error, never a silent null.
pub fn to_storage_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(RecordBatch::try_new(target.clone(), batch.columns().to_vec())?);
    }
    let options = CastOptions { safe: false, ..Default::default() };
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(col, field)| {
            if col.data_type() == field.data_type() {
                return Ok(col.clone());
            }
            cast_with_options(col, field.data_type(), &options).map_err(|e| {
                LakehouseError::InvalidInput(format!(
                    "column '{}' cannot be stored as {}: {e}",
                    field.name(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

/// Replace view encodings (Utf8View, BinaryView) by plain ones in results: every
/// consumer (pyarrow, DuckDB, JSON writers) reads those, not all read views.
pub fn plain_encodings(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let plain = Arc::new(Schema::new_with_metadata(
        schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type()))).collect::<Vec<_>>(),
        schema.metadata().clone(),
    ));
    if &plain == schema {
        return Ok((plain, batches));
    }
    let batches = batches.iter().map(|b| to_storage_batch(b, &plain)).collect::<Result<Vec<_>>>()?;
    Ok((plain, batches))
}

fn plain_type(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Utf8View => Utf8,
        BinaryView => Binary,
        List(f) => List(Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type())))),
        Struct(fields) => Struct(fields.iter().map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type()))).collect::<Vec<_>>().into()),
        other => other.clone(),
    }
}

/// SHA-256 of a table's Arrow IPC stream: identical data -> identical hash, used to
/// make re-ingesting the same Arrow table a no-op.
pub fn table_hash(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let mut hasher = HashingWriter(Sha256::new());
    {
        let mut writer = StreamWriter::try_new(&mut hasher, schema)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    Ok(format!("sha256:{}", hex::encode(hasher.0.finalize())))
}

struct HashingWriter(Sha256);

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, UInt64Array};

    #[test]
    fn unsigned_and_zoned_types_map_to_storable_ones() {
        let s = Schema::new(vec![
            Field::new("a", DataType::UInt64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, Some("America/Chicago".into())), true),
            Field::new("s", DataType::LargeUtf8, true),
        ]);
        let out = storage_schema(&s).unwrap();
        assert_eq!(out.field(0).data_type(), &DataType::Decimal128(20, 0));
        assert_eq!(out.field(1).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(out.field(2).data_type(), &DataType::Utf8);
    }

    #[test]
    fn storage_cast_keeps_values() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::UInt64, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt64Array::from(vec![u64::MAX, 1]))]).unwrap();
        let target = Arc::new(storage_schema(&schema).unwrap());
        let out = to_storage_batch(&batch, &target).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.column(0).data_type(), &DataType::Decimal128(20, 0));
    }

    #[test]
    fn identical_tables_hash_identically_and_different_ones_do_not() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let mk = |v: Vec<i64>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap();
        let h1 = table_hash(&schema, &[mk(vec![1, 2])]).unwrap();
        assert_eq!(h1, table_hash(&schema, &[mk(vec![1, 2])]).unwrap());
        assert_ne!(h1, table_hash(&schema, &[mk(vec![1, 3])]).unwrap());
    }
}

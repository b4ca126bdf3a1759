//! Feed a stream of record batches to a Delta write without collecting it first,
//! so a CSV or a database table larger than memory lands as one commit with flat memory.
//!
//! delta-rs writes from a DataFusion logical plan; we give it a scan over a
//! single-use streaming partition that pulls batches from the caller's iterator and
//! casts each to the storage schema as it goes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;
use lakehouse_shared::arrow_helpers::to_storage_batch;
use lakehouse_shared::{LakehouseError, Result};

/// Batches as the caller produces them (a pyarrow reader, a Vec, a CSV reader, ...).
pub type BatchSource = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// What the write learns from the stream while it runs.
#[derive(Default)]
pub struct StreamProgress {
    pub rows: AtomicU64,
    /// The producer's own error, if it failed: reported as such instead of as a write error.
    pub source_error: Mutex<Option<String>>,
}

/// A logical plan reading `source` once, in the storage schema `target`.
pub fn input_plan(target: SchemaRef, source: BatchSource, progress: Arc<StreamProgress>) -> Result<LogicalPlan> {
    let partition = Arc::new(OnceStream { target: target.clone(), source: Mutex::new(Some(source)), progress });
    let table = StreamingTable::try_new(target, vec![partition]).map_err(LakehouseError::internal)?;
    LogicalPlanBuilder::scan("lakehouse_input", provider_as_source(Arc::new(table)), None)
        .and_then(|b| b.build())
        .map_err(LakehouseError::internal)
}

struct OnceStream {
    target: SchemaRef,
    source: Mutex<Option<BatchSource>>,
    progress: Arc<StreamProgress>,
}

impl fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceStream").field("target", &self.target).finish()
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.target
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let source = self.source.lock().expect("stream source").take().unwrap_or_else(|| {
            // A plan is executed once; a second execution must fail loudly, not write nothing.
            Box::new(std::iter::once(Err(ArrowError::ComputeError("input stream was already consumed".into()))))
        });
        let (target, progress) = (self.target.clone(), self.progress.clone());
        let batches = source.map(move |batch| {
            let batch = batch.inspect_err(|e| {
                *progress.source_error.lock().expect("progress") = Some(e.to_string());
            })?;
            let batch = to_storage_batch(&batch, &target).map_err(|e| DataFusionError::External(Box::new(e)))?;
            progress.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.target.clone(), futures::stream::iter(batches)))
    }
}

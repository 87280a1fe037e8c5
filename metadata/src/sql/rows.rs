//! Turning rows back into model values. A value that does not fit the model (a
//! malformed UUID, a partition number beyond `i32`) is [`CatalogError::Corrupt`]:
//! the database was written by something other than this crate.

use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use crate::{CatalogError, IndexEntry, Result, TopicId};

pub(super) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(column)
        .map_err(|e| CatalogError::Corrupt(format!("column '{column}': {e}")))
}

pub(super) fn topic_id(text: &str) -> Result<TopicId> {
    TopicId::parse_str(text)
        .map_err(|e| CatalogError::Corrupt(format!("topic id '{text}' is not a UUID: {e}")))
}

pub(super) fn to_i32(value: i64, what: &str) -> Result<i32> {
    i32::try_from(value).map_err(|_| CatalogError::Corrupt(format!("{what} {value} exceeds i32")))
}

pub(super) fn to_i16(value: i64, what: &str) -> Result<i16> {
    i16::try_from(value).map_err(|_| CatalogError::Corrupt(format!("{what} {value} exceeds i16")))
}

/// Columns: base_offset, last_offset, object_key, position, length, max_timestamp.
pub(super) fn index_entry(row: &AnyRow) -> Result<IndexEntry> {
    Ok(IndexEntry {
        base_offset: get(row, "base_offset")?,
        last_offset: get(row, "last_offset")?,
        object_key: get(row, "object_key")?,
        position: get(row, "position")?,
        length: get(row, "length")?,
        max_timestamp: get(row, "max_timestamp")?,
    })
}

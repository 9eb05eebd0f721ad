//! Typed rows over the contract's columnar batches.

use alloc::string::String;
use alloc::vec::Vec;

use crate::types::{Batch, Column, FieldType};

/// A Rust type that can be one field of an input or output record.
pub trait FieldValue: Sized {
    const KIND: FieldType;
    /// The column's values, borrowed once per batch so that reading a row is an index.
    type Slice<'a>: Copy;
    fn slice<'a>(column: &'a Column, field: &str) -> Result<Self::Slice<'a>, String>;
    fn at(slice: Self::Slice<'_>, row: usize) -> Self;
    fn into_column(values: Vec<Self>) -> Column;
}

fn mismatch(field: &str, want: &str, column: &Column) -> String {
    let got = match column {
        Column::Booleans(_) => "booleans",
        Column::Integers(_) => "integers",
        Column::Doubles(_) => "doubles",
        Column::Texts(_) => "texts",
        Column::Timestamps(_) => "timestamps",
    };
    alloc::format!("field `{field}`: expected a column of {want}, the host sent {got}")
}

macro_rules! field_value {
    ($ty:ty, $kind:ident, $variant:ident, $want:literal, |$s:ident, $row:ident| $at:expr) => {
        impl FieldValue for $ty {
            const KIND: FieldType = FieldType::$kind;
            type Slice<'a> = &'a [$ty];
            fn slice<'a>(column: &'a Column, field: &str) -> Result<&'a [$ty], String> {
                match column {
                    Column::$variant(values) => Ok(values),
                    other => Err(mismatch(field, $want, other)),
                }
            }
            #[inline]
            fn at($s: &[$ty], $row: usize) -> $ty {
                $at
            }
            fn into_column(values: Vec<$ty>) -> Column {
                Column::$variant(values)
            }
        }
    };
}

field_value!(bool, Boolean, Booleans, "booleans", |s, row| s[row]);
field_value!(i64, Integer, Integers, "integers", |s, row| s[row]);
field_value!(f64, Double, Doubles, "doubles", |s, row| s[row]);
field_value!(String, Text, Texts, "texts", |s, row| s[row].clone());

/// Milliseconds since the Unix epoch, UTC: a field the host parses from the input's time format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp(pub i64);

impl FieldValue for Timestamp {
    const KIND: FieldType = FieldType::Timestamp;
    type Slice<'a> = &'a [i64];
    fn slice<'a>(column: &'a Column, field: &str) -> Result<&'a [i64], String> {
        match column {
            Column::Timestamps(values) => Ok(values),
            other => Err(mismatch(field, "timestamps", other)),
        }
    }
    #[inline]
    fn at(slice: &[i64], row: usize) -> Timestamp {
        Timestamp(slice[row])
    }
    fn into_column(values: Vec<Timestamp>) -> Column {
        Column::Timestamps(values.into_iter().map(|t| t.0).collect())
    }
}

/// The names and types of a record's fields, in declaration order.
pub type Fields = &'static [(&'static str, FieldType)];

/// A struct that is read from or written as a batch; made by [`record!`](crate::record).
pub trait Record: Sized {
    const FIELDS: Fields;
    type Columns<'a>;
    fn columns(batch: &Batch) -> Result<Self::Columns<'_>, String>;
    fn row(columns: &Self::Columns<'_>, row: usize) -> Self;
    fn into_batch(rows: Vec<Self>) -> Batch;
}

/// Declares a record: a struct whose fields are `bool`, `i64`, `f64`, `String` or `Timestamp`,
/// readable from an input batch and writable as an output batch.
#[macro_export]
macro_rules! record {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name { $(pub $field: $ty),* }

        impl $crate::Record for $name {
            const FIELDS: $crate::Fields =
                &[$((stringify!($field), <$ty as $crate::FieldValue>::KIND)),*];
            type Columns<'a> = ($(<$ty as $crate::FieldValue>::Slice<'a>,)*);

            fn columns(
                batch: &$crate::types::Batch,
            ) -> ::core::result::Result<Self::Columns<'_>, $crate::__String> {
                let rows = batch.rows as usize;
                let mut columns = batch.columns.iter();
                Ok(($({
                    let field = stringify!($field);
                    let column = columns.next().ok_or_else(|| {
                        $crate::__format!("field `{field}`: the host sent no column for it")
                    })?;
                    let slice = <$ty as $crate::FieldValue>::slice(column, field)?;
                    if slice.len() != rows {
                        return Err($crate::__format!(
                            "field `{field}`: {} values for {rows} rows", slice.len()
                        ));
                    }
                    slice
                },)*))
            }

            #[inline]
            fn row(columns: &Self::Columns<'_>, row: usize) -> Self {
                let ($($field,)*) = *columns;
                Self { $($field: <$ty as $crate::FieldValue>::at($field, row)),* }
            }

            fn into_batch(rows: $crate::__Vec<Self>) -> $crate::types::Batch {
                $crate::types::Batch {
                    rows: rows.len() as u32,
                    columns: $crate::__vec![$(
                        <$ty as $crate::FieldValue>::into_column(
                            rows.iter().map(|r| r.$field.clone()).collect(),
                        )
                    ),*],
                }
            }
        }
    };
}

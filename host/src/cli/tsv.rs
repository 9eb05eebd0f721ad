//! The Amazon US customer reviews TSV, as `gen` writes it and `produce` reads it: the columns,
//! their dates, and the JSON message one row becomes (docs/interfaces.md, "Input message").

use std::io::Write;

/// The column names in file order; they are also the keys of the JSON message.
pub const COLUMNS: [&str; 15] = [
    "marketplace",
    "customer_id",
    "review_id",
    "product_id",
    "product_parent",
    "product_title",
    "product_category",
    "star_rating",
    "helpful_votes",
    "total_votes",
    "vine",
    "verified_purchase",
    "review_headline",
    "review_body",
    "review_date",
];

/// The header line of the published files (without its newline).
pub const HEADER: &str = "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\t\
    product_title\tproduct_category\tstar_rating\thelpful_votes\ttotal_votes\tvine\t\
    verified_purchase\treview_headline\treview_body\treview_date";

/// Index of `product_id`, the message key.
pub const PRODUCT_ID: usize = 3;
/// Index of `review_date`, the event time.
pub const REVIEW_DATE: usize = 14;

/// Columns sent as JSON numbers when their text is an integer.
const INTEGER_COLUMNS: [usize; 3] = [7, 8, 9];

/// Splits a line (without its line ending) into its 15 columns; `None` when it has another count.
pub fn split_columns(line: &[u8]) -> Option<[&[u8]; 15]> {
    let mut columns: [&[u8]; 15] = [&[]; 15];
    let mut parts = line.split(|&b| b == b'\t');
    for column in &mut columns {
        *column = parts.next()?;
    }
    parts.next().is_none().then_some(columns)
}

/// The message key: the `product_id` column, or empty when the line is too short to have one.
pub fn key_of(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b'\t').nth(PRODUCT_ID).unwrap_or(&[])
}

/// Whether a line is the header, so that readers skip it only when it really is one.
pub fn is_header(line: &[u8]) -> bool {
    line.starts_with(b"marketplace\t")
}

/// Strips a trailing `\n` or `\r\n`, so that files written on any system read the same.
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes the JSON message for a row into `out` (cleared first) and returns true; returns false,
/// leaving `out` empty, for a line without exactly 15 columns, which is to be sent raw.
pub fn write_message(line: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(columns) = split_columns(line) else {
        return false;
    };
    out.push(b'{');
    for (index, (name, text)) in COLUMNS.iter().zip(columns).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json_string(out, name);
        out.push(b':');
        write_value(out, index, text);
    }
    out.push(b'}');
    true
}

/// Writes one column's value: a number for an integer column holding an integer, else a string.
fn write_value(out: &mut Vec<u8>, index: usize, text: &[u8]) {
    if INTEGER_COLUMNS.contains(&index) {
        if let Some(number) = parse_integer(text) {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{number}");
            return;
        }
    }
    write_json_string(out, &String::from_utf8_lossy(text));
}

/// The column's integer value, if its whole text is one.
fn parse_integer(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Writes a JSON string literal with every needed escape.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Dates in the TSV are `YYYY-MM-DD`, read and written as the platform's event time does.
pub use crate::time::{date_days as parse_date, format_date};

#[cfg(test)]
mod tests {
    use super::*;

    fn row(star_rating: &str) -> String {
        [
            "US",
            "12345678",
            "R1234567890ABC",
            "B00ABCDEFG",
            "123456789",
            "A \"quoted\" title \\ with ünïcode",
            "Books",
            star_rating,
            "1",
            "3",
            "N",
            "Y",
            "Great",
            "Body text.",
            "2015-03-01",
        ]
        .join("\t")
    }

    fn message(line: &str) -> Option<serde_json::Value> {
        let mut out = Vec::new();
        write_message(line.as_bytes(), &mut out).then(|| serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn header_has_the_fifteen_columns() {
        assert_eq!(HEADER.split('\t').collect::<Vec<_>>(), COLUMNS);
        assert!(is_header(HEADER.as_bytes()));
        assert_eq!(COLUMNS[PRODUCT_ID], "product_id");
        assert_eq!(COLUMNS[REVIEW_DATE], "review_date");
    }

    #[test]
    fn a_normal_row_becomes_an_object_with_numbers_for_counts() {
        let value = message(&row("5")).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.keys().len(), 15);
        assert_eq!(value["star_rating"], 5);
        assert_eq!(value["helpful_votes"], 1);
        assert_eq!(value["total_votes"], 3);
        assert_eq!(value["customer_id"], "12345678");
        assert_eq!(value["product_parent"], "123456789");
        assert_eq!(value["product_title"], "A \"quoted\" title \\ with ünïcode");
        assert_eq!(value["review_date"], "2015-03-01");
        let keys: Vec<_> = object.keys().map(String::as_str).collect();
        let mut sorted = COLUMNS.to_vec();
        sorted.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, sorted);
    }

    #[test]
    fn a_mistyped_star_rating_stays_a_string() {
        let value = message(&row("five")).unwrap();
        assert_eq!(value["star_rating"], "five");
        assert_eq!(value["total_votes"], 3);
        let value = message(&row("")).unwrap();
        assert_eq!(value["star_rating"], "");
    }

    #[test]
    fn a_truncated_line_is_not_json_but_keeps_its_key() {
        let full = row("5");
        let truncated: Vec<&str> = full.split('\t').take(9).collect();
        let truncated = truncated.join("\t");
        let mut out = b"stale".to_vec();
        assert!(!write_message(truncated.as_bytes(), &mut out));
        assert!(out.is_empty());
        assert_eq!(key_of(truncated.as_bytes()), b"B00ABCDEFG");
        assert_eq!(key_of(b"US\t1\tR1"), b"");
        assert!(message(&format!("{full}\textra")).is_none());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut line = row("4").into_bytes();
        let at = line.iter().position(|&b| b == b'G').unwrap();
        line.insert(at, 0xff);
        let mut out = Vec::new();
        assert!(write_message(&line, &mut out));
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["product_id"], "B00ABCDEF\u{fffd}G");
    }

    #[test]
    fn dates_parse_only_when_real() {
        assert_eq!(parse_date(b"1970-01-01"), Some(0));
        assert_eq!(parse_date(b"2015-01-01"), Some(16_436));
        assert_eq!(parse_date(b"2016-02-29"), Some(16_860));
        for bad in [
            "2015-02-29",
            "2015-02-30",
            "1900-02-29",
            "2015-13-01",
            "not-a-date",
            "2015-1-01",
        ] {
            assert_eq!(parse_date(bad.as_bytes()), None, "{bad}");
        }
        for days in 0..=parse_date(b"2100-12-31").unwrap() {
            assert_eq!(parse_date(format_date(days).as_bytes()), Some(days));
        }
        assert_eq!(format_date(16_860), "2016-02-29");
    }

    #[test]
    fn line_ends_are_trimmed() {
        assert_eq!(trim_line_end(b"a\tb\r\n"), b"a\tb");
        assert_eq!(trim_line_end(b"a\tb\n"), b"a\tb");
        assert_eq!(trim_line_end(b"a\tb"), b"a\tb");
    }
}

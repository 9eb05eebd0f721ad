//! A JSON projector: reads one top-level object, keeps only the fields the app declared, and
//! appends them to columns. Everything else is skipped without being parsed or allocated.

use memchr::memchr2;

use crate::model::Value;
use crate::plugin::{AppSpec, Batch, Column, EventTimeSource, FieldType, TimeFormat};
use crate::time::{parse_time, EventTime, TimeError};

/// Why a message was not accepted: the text of a dead letter's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("field `{0}` is missing")]
    Missing(String),
    #[error("field `{field}` is {found}, expected {expected}")]
    Mistyped {
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("key field `{0}` is empty")]
    EmptyKey(String),
    #[error("event-time field `{field}`: {source}")]
    Time { field: String, source: TimeError },
}

/// The parts of a record the platform itself uses; its other fields went to the columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    pub time: EventTime,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Input(usize),
    Key,
    Time,
}

#[derive(Debug)]
struct Wanted {
    name: Box<[u8]>,
    roles: Vec<Role>,
}

/// One value as it appears in the JSON text.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    /// A string's contents, still escaped when `escaped` is set.
    Str {
        text: &'a [u8],
        escaped: bool,
    },
    Number(&'a [u8]),
    Bool(bool),
    Null,
    Other(&'static str),
}

impl Raw<'_> {
    fn describe(&self) -> String {
        match self {
            Raw::Str { text, .. } => {
                format!(
                    "a string \"{}\"",
                    String::from_utf8_lossy(&text[..text.len().min(40)])
                )
            }
            Raw::Number(n) => format!("the number {}", String::from_utf8_lossy(n)),
            Raw::Bool(b) => format!("the boolean {b}"),
            Raw::Null => "null".into(),
            Raw::Other(what) => (*what).into(),
        }
    }
}

/// Decodes one app's messages. Holds per-message scratch so the hot path does not allocate.
#[derive(Debug)]
pub struct Decoder {
    wanted: Vec<Wanted>,
    inputs: Vec<(String, FieldType)>,
    key_field: String,
    time: Option<(String, TimeFormat)>,
    found: Vec<bool>,
    values: Vec<Value>,
    key: String,
    columns: Vec<Column>,
    rows: usize,
    /// Inputs another stage fills: their placeholder values are pushed again for every row.
    supplied: Vec<usize>,
    /// The field names of the message decoded last, in order, as they appeared: a producer
    /// writes every message with the same fields in the same order, so the next message's
    /// names are checked against these bytes instead of being scanned and looked up.
    shape: Shape,
}

/// A message's field names as they appeared (each `"name":`, from its opening quote to the
/// colon), in order, and which wanted field each is.
#[derive(Debug, Default)]
struct Shape {
    /// The bytes of every name, one after another.
    bytes: Vec<u8>,
    /// Per field: its end in `bytes` and the wanted field it is, if any.
    fields: Vec<(usize, Option<usize>)>,
    /// Per field of the message being decoded: where its name was, and the wanted field.
    seen: Vec<(usize, usize, Option<usize>)>,
}

impl Shape {
    /// The `n`th name and its wanted field, when `rest` starts with it.
    #[inline]
    fn predict(&self, n: usize, rest: &[u8]) -> Option<(usize, Option<usize>)> {
        let &(end, wanted) = self.fields.get(n)?;
        let start = n.checked_sub(1).map_or(0, |p| self.fields[p].0);
        let name = &self.bytes[start..end];
        starts_with(rest, name).then_some((name.len(), wanted))
    }

    /// Takes the names `seen` in `payload` as the shape from now on.
    fn learn(&mut self, payload: &[u8]) {
        self.bytes.clear();
        self.fields.clear();
        for &(start, end, wanted) in &self.seen {
            self.bytes.extend_from_slice(&payload[start..end]);
            self.fields.push((self.bytes.len(), wanted));
        }
    }
}

impl Decoder {
    pub fn new(spec: &AppSpec) -> Self {
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut want = |name: &str, role: Role| match wanted
            .iter_mut()
            .find(|w| &*w.name == name.as_bytes())
        {
            Some(w) => w.roles.push(role),
            None => wanted.push(Wanted {
                name: name.as_bytes().into(),
                roles: vec![role],
            }),
        };
        for (i, field) in spec.inputs.iter().enumerate() {
            want(&field.name, Role::Input(i));
        }
        want(&spec.key_field, Role::Key);
        let time = match &spec.event_time {
            EventTimeSource::Field { name, format } => {
                want(name, Role::Time);
                Some((name.clone(), *format))
            }
            EventTimeSource::Ingestion => None,
        };
        let inputs: Vec<_> = spec
            .inputs
            .iter()
            .map(|f| (f.name.clone(), f.kind))
            .collect();
        let n = wanted.len();
        let mut decoder = Self {
            wanted,
            values: inputs.iter().map(|_| Value::Int(0)).collect(),
            columns: Vec::new(),
            inputs,
            key_field: spec.key_field.clone(),
            time,
            found: vec![false; n],
            key: String::new(),
            rows: 0,
            supplied: Vec::new(),
            shape: Shape::default(),
        };
        decoder.columns = decoder.empty_columns();
        decoder
    }

    /// A decoder that does not look for the given inputs in the records: another stage (the
    /// enrich stage) fills them, and until it does they hold the value given.
    pub fn supplied(mut self, fields: &[(usize, crate::enrich::manifest::Value)]) -> Self {
        use crate::enrich::manifest::Value as Given;
        for (input, given) in fields {
            for wanted in &mut self.wanted {
                wanted.roles.retain(|r| *r != Role::Input(*input));
            }
            if let Some(value) = self.values.get_mut(*input) {
                *value = match given {
                    Given::Double(d) => Value::Double(*d),
                    Given::Integer(i) => Value::Int(*i),
                    Given::Boolean(b) => Value::Bool(*b),
                    Given::Text(t) => Value::Text(t.clone()),
                };
            }
        }
        self.wanted.retain(|w| !w.roles.is_empty());
        self.shape = Shape::default();
        self.found = vec![false; self.wanted.len()];
        self.supplied = fields.iter().map(|(i, _)| *i).collect();
        self
    }

    fn empty_columns(&self) -> Vec<Column> {
        self.inputs
            .iter()
            .map(|(_, kind)| match kind {
                FieldType::Boolean => Column::Booleans(Vec::new()),
                FieldType::Integer => Column::Integers(Vec::new()),
                FieldType::Double => Column::Doubles(Vec::new()),
                FieldType::Text => Column::Texts(Vec::new()),
                FieldType::Timestamp => Column::Timestamps(Vec::new()),
            })
            .collect()
    }

    /// The key of the message decoded last.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Removes the row decoded last (a late record never reaches the plugin).
    pub fn discard_last(&mut self) {
        if self.rows == 0 {
            return;
        }
        self.rows -= 1;
        for column in &mut self.columns {
            match column {
                Column::Booleans(v) => drop(v.pop()),
                Column::Integers(v) | Column::Timestamps(v) => drop(v.pop()),
                Column::Doubles(v) => drop(v.pop()),
                Column::Texts(v) => drop(v.pop()),
            }
        }
    }

    /// Hands the accumulated columns over as a batch and starts empty ones.
    pub fn take_batch(&mut self) -> Batch {
        let fresh = self.empty_columns();
        let columns = std::mem::replace(&mut self.columns, fresh);
        let rows = std::mem::take(&mut self.rows) as u32;
        Batch { rows, columns }
    }

    /// Decodes one message; on success its input fields are appended as a new row.
    /// `ingestion` is the Kafka timestamp, used when the app has no event-time field.
    pub fn decode(&mut self, payload: &[u8], ingestion: EventTime) -> Result<Decoded, DecodeError> {
        self.found.iter_mut().for_each(|f| *f = false);
        let mut time = ingestion;
        let mut scanner = Scanner { s: payload, i: 0 };
        scanner.object_start()?;
        self.shape.seen.clear();
        // The message left the shape: its later names are read the general way, and the shape
        // is learnt again from it.
        let mut strayed = false;
        let mut field = 0;
        loop {
            scanner.ws();
            if scanner.eat(b'}') {
                break;
            }
            if field > 0 && !scanner.eat(b',') {
                return Err(scanner.error("expected `,` or `}` after a value"));
            }
            scanner.ws();
            let start = scanner.i;
            let predicted = if strayed {
                None
            } else {
                self.shape.predict(field, &payload[start..])
            };
            let index = match predicted {
                Some((len, index)) => {
                    scanner.i += len;
                    index
                }
                None => {
                    strayed = true;
                    let (name, escaped) = scanner.string()?;
                    scanner.ws();
                    if !scanner.eat(b':') {
                        return Err(scanner.error("expected `:` after a name"));
                    }
                    if escaped {
                        None
                    } else {
                        self.wanted.iter().position(|w| &*w.name == name)
                    }
                }
            };
            self.shape.seen.push((start, scanner.i, index));
            field += 1;
            scanner.ws();
            match index {
                None => scanner.skip_value()?,
                Some(index) => {
                    let raw = scanner.value()?;
                    self.found[index] = true;
                    for r in 0..self.wanted[index].roles.len() {
                        let role = self.wanted[index].roles[r];
                        if let Some(t) = self.take(role, raw)? {
                            time = t;
                        }
                    }
                }
            }
        }
        scanner.ws();
        if scanner.i != payload.len() {
            return Err(scanner.error("trailing bytes after the object"));
        }
        if strayed || field != self.shape.fields.len() {
            self.shape.learn(payload);
        }
        if let Some(missing) = self.found.iter().position(|f| !f) {
            return Err(DecodeError::Missing(
                String::from_utf8_lossy(&self.wanted[missing].name).into(),
            ));
        }
        for (i, (column, value)) in self
            .columns
            .iter_mut()
            .zip(self.values.iter_mut())
            .enumerate()
        {
            if self.supplied.contains(&i) {
                // `push` takes a text out of its value: a supplied placeholder stays.
                push(column, &mut value.clone());
            } else {
                push(column, value);
            }
        }
        self.rows += 1;
        Ok(Decoded { time })
    }

    fn take(&mut self, role: Role, raw: Raw<'_>) -> Result<Option<EventTime>, DecodeError> {
        match role {
            Role::Key => {
                // The key buffer is reused: no allocation per record on the common path.
                match raw {
                    Raw::Str {
                        text,
                        escaped: true,
                    } => self.key = text_of(text, true)?,
                    Raw::Str {
                        text,
                        escaped: false,
                    }
                    | Raw::Number(text) => {
                        let text = std::str::from_utf8(text).map_err(|_| {
                            DecodeError::NotJson("a string is not valid UTF-8".into())
                        })?;
                        self.key.clear();
                        self.key.push_str(text);
                    }
                    other => return Err(self.mistyped(&self.key_field, "a string", other)),
                }
                if self.key.is_empty() {
                    return Err(DecodeError::EmptyKey(self.key_field.clone()));
                }
                Ok(None)
            }
            Role::Time => {
                let (field, format) = self
                    .time
                    .as_ref()
                    .map(|(f, fmt)| (f.as_str(), *fmt))
                    .unwrap_or(("", TimeFormat::Date));
                let text = match raw {
                    Raw::Str {
                        text,
                        escaped: false,
                    } => text,
                    Raw::Number(n)
                        if matches!(format, TimeFormat::EpochMillis | TimeFormat::EpochSeconds) =>
                    {
                        n
                    }
                    other => return Err(self.mistyped(field, "a time", other)),
                };
                parse_time(format, text)
                    .map(Some)
                    .map_err(|source| DecodeError::Time {
                        field: field.into(),
                        source,
                    })
            }
            Role::Input(i) => {
                let (name, kind) = &self.inputs[i];
                self.values[i] = match (kind, raw) {
                    (FieldType::Integer, Raw::Number(n)) => Value::Int(
                        parse_i64(n).ok_or_else(|| self.mistyped(name, "an integer", raw))?,
                    ),
                    (FieldType::Double, Raw::Number(n)) => Value::Double(
                        std::str::from_utf8(n)
                            .ok()
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| self.mistyped(name, "a number", raw))?,
                    ),
                    (FieldType::Boolean, Raw::Bool(b)) => Value::Bool(b),
                    (FieldType::Text, Raw::Str { text, escaped }) => {
                        Value::Text(text_of(text, escaped)?)
                    }
                    (
                        FieldType::Timestamp,
                        Raw::Str {
                            text,
                            escaped: false,
                        },
                    ) => Value::Time(
                        parse_time(TimeFormat::Rfc3339, text)
                            .map_err(|source| DecodeError::Time {
                                field: name.clone(),
                                source,
                            })?
                            .millis(),
                    ),
                    (FieldType::Timestamp, Raw::Number(n)) => Value::Time(
                        parse_i64(n)
                            .ok_or_else(|| self.mistyped(name, "epoch milliseconds", raw))?,
                    ),
                    (kind, raw) => return Err(self.mistyped(name, expected(*kind), raw)),
                };
                Ok(None)
            }
        }
    }

    fn mistyped(&self, field: &str, expected: &'static str, raw: Raw<'_>) -> DecodeError {
        DecodeError::Mistyped {
            field: field.into(),
            expected,
            found: raw.describe(),
        }
    }
}

fn expected(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "a boolean",
        FieldType::Integer => "an integer",
        FieldType::Double => "a number",
        FieldType::Text => "a string",
        FieldType::Timestamp => "a timestamp",
    }
}

#[inline]
fn push(column: &mut Column, value: &mut Value) {
    match (column, value) {
        (Column::Integers(c), Value::Int(v)) => c.push(*v),
        (Column::Doubles(c), Value::Double(v)) => c.push(*v),
        (Column::Booleans(c), Value::Bool(v)) => c.push(*v),
        (Column::Texts(c), Value::Text(v)) => c.push(std::mem::take(v)),
        (Column::Timestamps(c), Value::Time(v)) => c.push(*v),
        // The decoder creates values of its columns' types only.
        _ => {}
    }
}

/// `rest.starts_with(prefix)` for the short prefixes names are, eight bytes at a time
/// instead of a call to `memcmp` per name.
#[inline]
fn starts_with(rest: &[u8], prefix: &[u8]) -> bool {
    let Some(rest) = rest.get(..prefix.len()) else {
        return false;
    };
    let n = prefix.len();
    if n < 8 {
        return rest == prefix;
    }
    // The last word overlaps the one before it.
    let mut at = 0;
    while at + 8 < n {
        if word_at(rest, at) != word_at(prefix, at) {
            return false;
        }
        at += 8;
    }
    word_at(rest, n - 8) == word_at(prefix, n - 8)
}

/// The eight bytes of `b` at `at` as one number, if `b` has them.
#[inline]
fn word_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map(u64::from_le_bytes)
}

#[inline]
fn parse_i64(n: &[u8]) -> Option<i64> {
    let (negative, digits) = match n.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, n),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(n).ok()?.parse().ok();
    }
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    Some(if negative { -v } else { v })
}

fn text_of(text: &[u8], escaped: bool) -> Result<String, DecodeError> {
    if !escaped {
        return std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotJson("a string is not valid UTF-8".into()));
    }
    let quoted = [b"\"", text, b"\""].concat();
    serde_json::from_slice::<String>(&quoted)
        .map_err(|e| DecodeError::NotJson(format!("bad string escape: {e}")))
}

/// Where the first `"` or `\` is: most strings in a record are short, so the first sixteen
/// bytes are tested a word at a time before `memchr2` (whose set-up costs more than such a
/// string's scan) looks further.
#[inline]
fn quote_or_escape(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in each byte of `x` that is zero; a borrow can set it above the lowest
    // zero byte too, never below it, so the lowest is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    while at < 16 {
        let Some(word) = word_at(rest, at) else {
            break;
        };
        let found = zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr2(b'"', b'\\', &rest[at..]).map(|n| at + n)
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, what: &str) -> DecodeError {
        DecodeError::NotJson(format!("{what} at byte {}", self.i))
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn object_start(&mut self) -> Result<(), DecodeError> {
        self.ws();
        if self.eat(b'{') {
            Ok(())
        } else {
            Err(self.error("expected `{`"))
        }
    }

    /// A string's raw contents and whether they contain escapes; the cursor ends after it.
    #[inline]
    fn string(&mut self) -> Result<(&'a [u8], bool), DecodeError> {
        if !self.eat(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            match quote_or_escape(&self.s[self.i..]) {
                None => return Err(self.error("unterminated string")),
                Some(n) => {
                    self.i += n;
                    if self.s[self.i] == b'\\' {
                        escaped = true;
                        self.i += 2;
                        if self.i > self.s.len() {
                            return Err(self.error("unterminated string"));
                        }
                    } else {
                        let text = &self.s[start..self.i];
                        self.i += 1;
                        return Ok((text, escaped));
                    }
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DecodeError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.error("unexpected bytes"))
        }
    }

    fn number(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn value(&mut self) -> Result<Raw<'a>, DecodeError> {
        match self.s.get(self.i) {
            Some(b'"') => self
                .string()
                .map(|(text, escaped)| Raw::Str { text, escaped }),
            Some(b'-' | b'0'..=b'9') => Ok(Raw::Number(self.number())),
            Some(b't') => self.literal(b"true").map(|_| Raw::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Raw::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|_| Raw::Null),
            Some(b'{') => self.skip_value().map(|_| Raw::Other("an object")),
            Some(b'[') => self.skip_value().map(|_| Raw::Other("an array")),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Skips a value of any shape, nested ones included.
    fn skip_value(&mut self) -> Result<(), DecodeError> {
        match self.s.get(self.i) {
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.s.get(self.i) {
                        None => return Err(self.error("unterminated object or array")),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => self.value().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{EmitMode, FieldSpec};
    use crate::window::Assigner;
    use std::time::Duration;

    #[test]
    fn a_quote_or_escape_is_found_where_memchr_finds_it() {
        // Every filler byte (the ones next to `"` and `\` make the word test's borrows), with
        // the quote or escape at every place around the two words tested first, and none.
        for filler in (0..=255u8).filter(|b| !matches!(b, b'"' | b'\\')) {
            for len in 0..40 {
                let mut text = vec![filler; len];
                assert_eq!(quote_or_escape(&text), None, "{filler} × {len}");
                for at in 0..len {
                    for mark in [b'"', b'\\'] {
                        text[at] = mark;
                        let expected = memchr2(b'"', b'\\', &text);
                        assert_eq!(quote_or_escape(&text), expected, "{filler} {len} {at}");
                        text[at] = filler;
                    }
                }
            }
        }
        assert_eq!(quote_or_escape(b"ab\"\\\""), Some(2));
        assert_eq!(quote_or_escape(b"abcdefghijklmnopq\\\""), Some(17));
    }

    fn spec() -> AppSpec {
        AppSpec {
            name: crate::names::AppName::new("t").unwrap(),
            version: "1".into(),
            table: "t".into(),
            inputs: vec![
                FieldSpec {
                    name: "star_rating".into(),
                    kind: FieldType::Integer,
                },
                FieldSpec {
                    name: "title".into(),
                    kind: FieldType::Text,
                },
            ],
            key_field: "product_id".into(),
            event_time: EventTimeSource::Field {
                name: "review_date".into(),
                format: TimeFormat::Date,
            },
            assigner: Assigner::Tumbling { size_ms: 1 },
            watermark_delay_ms: 0,
            allowed_lateness_ms: 0,
            emit: EmitMode::OnClose,
            update_interval: Duration::from_secs(1),
            outputs: vec![],
            state_version: 1,
            has_filter: false,
            sections: Default::default(),
        }
    }

    #[test]
    fn supplied_inputs_are_not_read_and_hold_their_placeholder() {
        use crate::enrich::manifest::Value as Given;
        let mut d = Decoder::new(&spec()).supplied(&[(1, Given::Text("?".into()))]);
        let json = r#"{"product_id":"p","review_date":"2015-01-02","star_rating":4}"#;
        for _ in 0..2 {
            d.decode(json.as_bytes(), EventTime::MIN).unwrap();
        }
        let batch = d.take_batch();
        assert_eq!(batch.rows, 2);
        assert!(matches!(&batch.columns[0], Column::Integers(v) if *v == [4, 4]));
        assert!(matches!(&batch.columns[1], Column::Texts(v) if *v == ["?", "?"]));
    }

    /// What one decode gave: the outcome, the key, and the row's values, in debug form.
    fn outcome(d: &mut Decoder, json: &str) -> String {
        let result = d.decode(json.as_bytes(), EventTime::MIN);
        // After an error the key is whatever was read last: not part of the outcome.
        let key = if result.is_ok() { d.key() } else { "" }.to_owned();
        format!("{result:?} {key} {:?}", d.take_batch().columns)
    }

    #[test]
    fn a_decoder_that_learnt_one_shape_reads_any_other_alike() {
        let messages = [
            r#"{"product_id":"B1","star_rating":5,"title":"t","review_date":"2015-01-02"}"#,
            r#"{"product_id":"B2","star_rating":4,"title":"u","review_date":"2015-01-03"}"#,
            r#"{"star_rating":3,"product_id":"B3","title":"v","review_date":"2015-01-04"}"#,
            r#"{ "product_id" : "B4", "star_rating" : 2, "title" : "w", "review_date" : "2015-01-05" }"#,
            r#"{"product_id":"B5","star_rating":5,"title":"t","review_date":"2015-01-02","x":1}"#,
            r#"{"product_id":"B6","star_rating":5,"title":"t"}"#,
            r#"{"product_id":"B7","star_rating_":5,"title":"t","review_date":"2015-01-02"}"#,
            r#"{"product_id":"B8","star\u005frating":5,"title":"t","review_date":"2015-01-02"}"#,
            r#"{"product_id":"B9","star_rating":5,"title":"t","review_date":"2015-01-02","title":"z"}"#,
            r#"{"product_id":"C1","star_rating":1,"title":"t","review_date":"2015-01-02"}"#,
            r#"{"product_id":"C2","star_rating":"1","title":"t","review_date":"2015-01-02"}"#,
            r#"{"product_id":"C3","star_rating":1,"title":"t","review_date":"2015-01-02""#,
            r#"{"product_id""#,
            r#"{}"#,
        ];
        let mut warm = Decoder::new(&spec());
        for round in 0..3 {
            for i in 0..messages.len() {
                // Three orders: the shape learnt from one kind of message meets other kinds.
                let json = messages[(i * (round + 1)) % messages.len()];
                let fresh = outcome(&mut Decoder::new(&spec()), json);
                assert_eq!(outcome(&mut warm, json), fresh, "{json}");
            }
        }
    }

    #[test]
    fn a_prefix_matches_only_when_every_byte_does() {
        let text: Vec<u8> = (b'a'..=b'z').collect();
        for n in 0..24 {
            let prefix = &text[..n];
            assert!(starts_with(&text, prefix), "{n}");
            assert!(
                !starts_with(&text[..n.saturating_sub(1)], prefix) || n == 0,
                "{n}"
            );
            for at in 0..n {
                let mut other = text.clone();
                other[at] = b'_';
                assert!(!starts_with(&other, prefix), "{n} {at}");
            }
        }
    }

    fn decode(json: &str) -> Result<(Decoded, String), DecodeError> {
        let mut d = Decoder::new(&spec());
        d.decode(json.as_bytes(), EventTime::MIN)
            .map(|x| (x, d.key().to_owned()))
    }

    #[test]
    fn projects_only_the_declared_fields() {
        let mut d = Decoder::new(&spec());
        let json = r#"{"marketplace":"US","product_id":"B1","star_rating":5,"nested":{"a":[1,"}"]},
            "title":"a \"quoted\" title","review_date":"2015-01-02","review_body":"x\\y"}"#;
        let decoded = d.decode(json.as_bytes(), EventTime::MIN).unwrap();
        assert_eq!(decoded.time.millis(), 1_420_156_800_000);
        assert_eq!(d.key(), "B1");
        let batch = d.take_batch();
        assert_eq!(batch.rows, 1);
        assert!(matches!(&batch.columns[0], Column::Integers(v) if v == &[5]));
        assert!(matches!(&batch.columns[1], Column::Texts(v) if v[0] == "a \"quoted\" title"));
        assert_eq!(d.take_batch().rows, 0);
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        let ok = r#"{"product_id":"B1","star_rating":5,"title":"t","review_date":"2015-01-02"}"#;
        assert!(decode(ok).is_ok());
        let cases = [
            (
                r#"{"product_id":"B1","star_rating":"five","title":"t","review_date":"2015-01-02"}"#,
                "field `star_rating` is a string \"five\", expected an integer",
            ),
            (
                r#"{"product_id":"B1","title":"t","review_date":"2015-01-02"}"#,
                "field `star_rating` is missing",
            ),
            (
                r#"{"product_id":"","star_rating":5,"title":"t","review_date":"2015-01-02"}"#,
                "key field `product_id` is empty",
            ),
            (
                r#"{"product_id":"B1","star_rating":5,"title":"t","review_date":"2015-02-30"}"#,
                "event-time field `review_date`: `2015-02-30` is not a date as YYYY-MM-DD",
            ),
            ("US\tB1\t5", "not a JSON object: expected `{` at byte 0"),
            (
                r#"{"product_id":"B1","star_rating":5"#,
                "not a JSON object: expected `,` or `}` after a value at byte 34",
            ),
        ];
        for (json, reason) in cases {
            assert_eq!(decode(json).unwrap_err().to_string(), reason, "{json}");
        }
    }

    #[test]
    fn a_rejected_record_leaves_no_partial_row() {
        let mut d = Decoder::new(&spec());
        let bad = r#"{"product_id":"B1","star_rating":4,"title":"t","review_date":"nope"}"#;
        assert!(d.decode(bad.as_bytes(), EventTime::MIN).is_err());
        assert_eq!(
            d.take_batch()
                .columns
                .iter()
                .map(|c| matches!(c, Column::Integers(v) if v.is_empty()) as u8)
                .sum::<u8>(),
            1
        );
    }
}

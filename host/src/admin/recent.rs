//! What an app did lately, for the dashboard: its latest result rows, its latest dead letters
//! with their reasons, and the history of its deploys, swaps and rollbacks. Kept in bounded rings
//! in the platform's memory only: they start empty when the platform starts, and the topics and
//! the table stay the record of truth.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::sink::Rejected;

/// Result rows kept per app.
pub const RESULTS_KEPT: usize = 50;
/// Dead letters kept per app.
pub const DEAD_LETTERS_KEPT: usize = 50;
/// Deploys, swaps and rollbacks kept per app.
pub const HISTORY_KEPT: usize = 100;
/// A dead letter's value is shown cut to this many bytes.
const PAYLOAD_SHOWN: usize = 512;
/// A dead letter's reason is shown cut to this many bytes.
const REASON_SHOWN: usize = 2048;

/// A deploy, swap or rollback of an app, or its first start on this host.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Wall clock, ms since the epoch.
    pub at_ms: i64,
    /// `start`, `deploy` or `rollback`.
    pub action: &'static str,
    /// The version that ran before; `None` for a start.
    pub from: Option<String>,
    /// The version asked for.
    pub to: String,
    /// How long the input waited while the new version took over; `None` when refused.
    pub pause_ms: Option<f64>,
    pub ok: bool,
    /// The answer the operator got, or why it was refused.
    pub outcome: String,
}

/// A record sent to the dead-letter topic, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub at_ms: i64,
    pub reason: String,
    /// Topic, partition and offset it came from.
    pub source: String,
    /// Its value as text, cut to a few hundred bytes.
    pub payload: String,
}

/// A result row, as the results topic carries it.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub at_ms: i64,
    pub row: Map<String, Value>,
}

/// One app's rings; the worker writes them at most once per batch, the admin API reads them.
#[derive(Default)]
pub struct Recent {
    results: Mutex<VecDeque<ResultRow>>,
    dead_letters: Mutex<VecDeque<DeadLetter>>,
    history: Mutex<VecDeque<Change>>,
}

fn push_bounded<T>(ring: &Mutex<VecDeque<T>>, items: impl IntoIterator<Item = T>, max: usize) {
    let mut ring = match ring.lock() {
        Ok(ring) => ring,
        Err(poisoned) => poisoned.into_inner(),
    };
    for item in items {
        if ring.len() == max {
            ring.pop_front();
        }
        ring.push_back(item);
    }
}

fn newest_first<T: Clone>(ring: &Mutex<VecDeque<T>>) -> Vec<T> {
    let ring = match ring.lock() {
        Ok(ring) => ring,
        Err(poisoned) => poisoned.into_inner(),
    };
    ring.iter().rev().cloned().collect()
}

/// The wall clock in ms since the epoch (0 before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The text cut at a character boundary to at most `max` bytes, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Recent {
    /// Keeps the last rows of a step; `rows` yields them in emit order.
    pub fn results(&self, at_ms: i64, rows: Vec<Map<String, Value>>) {
        let skip = rows.len().saturating_sub(RESULTS_KEPT);
        let rows = rows
            .into_iter()
            .skip(skip)
            .map(|row| ResultRow { at_ms, row });
        push_bounded(&self.results, rows, RESULTS_KEPT);
    }

    /// Keeps the last dead letters of a step.
    pub fn dead_letters(&self, at_ms: i64, records: &[Rejected]) {
        let skip = records.len().saturating_sub(DEAD_LETTERS_KEPT);
        let letters = records[skip..].iter().map(|r| {
            let shown = &r.payload[..r.payload.len().min(PAYLOAD_SHOWN + 4)];
            DeadLetter {
                at_ms,
                reason: cut(&r.reason, REASON_SHOWN),
                source: r.source.clone(),
                payload: cut(&String::from_utf8_lossy(shown), PAYLOAD_SHOWN),
            }
        });
        push_bounded(&self.dead_letters, letters, DEAD_LETTERS_KEPT);
    }

    pub fn change(&self, change: Change) {
        push_bounded(&self.history, [change], HISTORY_KEPT);
    }

    /// Newest first.
    pub fn latest_results(&self) -> Vec<ResultRow> {
        newest_first(&self.results)
    }

    /// Newest first.
    pub fn latest_dead_letters(&self) -> Vec<DeadLetter> {
        newest_first(&self.dead_letters)
    }

    /// Newest first.
    pub fn history(&self) -> Vec<Change> {
        newest_first(&self.history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_keep_the_newest_and_stay_bounded() {
        let recent = Recent::default();
        for i in 0..(HISTORY_KEPT + 5) {
            recent.change(Change {
                at_ms: i as i64,
                action: "deploy",
                from: None,
                to: i.to_string(),
                pause_ms: Some(1.0),
                ok: true,
                outcome: String::new(),
            });
        }
        let history = recent.history();
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!(history[0].to, (HISTORY_KEPT + 4).to_string());

        let rows: Vec<_> = (0..RESULTS_KEPT * 3)
            .map(|i| {
                let mut row = Map::new();
                row.insert("n".into(), Value::from(i));
                row
            })
            .collect();
        recent.results(1, rows);
        let latest = recent.latest_results();
        assert_eq!(latest.len(), RESULTS_KEPT);
        assert_eq!(latest[0].row["n"], RESULTS_KEPT * 3 - 1);

        let long = Rejected {
            key: None,
            payload: "é".repeat(PAYLOAD_SHOWN).into_bytes(),
            reason: "bad".into(),
            source: "t/0@1".into(),
        };
        recent.dead_letters(2, &[long]);
        let letter = &recent.latest_dead_letters()[0];
        assert!(letter.payload.len() <= PAYLOAD_SHOWN + '…'.len_utf8());
        assert!(letter.payload.ends_with('…'));
        assert_eq!(letter.reason, "bad");
    }
}

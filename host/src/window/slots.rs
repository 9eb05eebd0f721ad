//! The host's half of the slot protocol: (key, window) → slot, so that keys never cross into
//! the plugin and the guest's accumulators sit in a dense array.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::Window;
use crate::time::EventTime;

/// A slot number in the guest's accumulator array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(u32);

impl SlotId {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// An interned key; valid while the key has an open window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(u32);

#[derive(Debug)]
struct Entry {
    key: KeyId,
    window: Window,
    /// The input partition the key arrives on: its state is checkpointed with that partition.
    partition: i32,
    open: bool,
    dirty: bool,
}

#[derive(Debug)]
struct Key {
    /// Shared with `key_ids`: a new key costs one allocation, not two.
    name: Arc<str>,
    open_windows: u32,
}

/// Open windows of one app on one host.
#[derive(Debug, Default)]
pub struct SlotTable {
    key_ids: HashMap<Arc<str>, KeyId, RandomState>,
    keys: Vec<Option<Key>>,
    free_keys: Vec<KeyId>,
    slots: HashMap<(KeyId, EventTime), SlotId, RandomState>,
    entries: Vec<Entry>,
    free_slots: Vec<SlotId>,
    by_end: BTreeMap<EventTime, Vec<SlotId>>,
    dirty: Vec<SlotId>,
    /// Session windows only: each key's open sessions, to find those a record touches.
    sessions: Option<HashMap<KeyId, Vec<SlotId>, RandomState>>,
    /// Slots merged into another in this batch: freed by `settle`, once the plugin has merged
    /// their state, so that no row of the batch can land in a reused slot.
    merged_away: Vec<SlotId>,
}

/// Which sessions a record may still join: those the watermark has not closed. A session the
/// watermark has passed is closed even before the next tick emits it, so that whether a record
/// joins it never depends on where a batch ended.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub watermark: EventTime,
    pub allowed_lateness_ms: u64,
}

impl Live {
    fn holds(&self, session: Window) -> bool {
        !session.is_late(self.allowed_lateness_ms, self.watermark)
    }
}

/// What a record's session did to a key's sessions.
#[derive(Debug, Default)]
pub struct SessionChanges {
    /// (into, from): the plugin merges `from`'s state into `into`, in this order.
    pub merges: Vec<(SlotId, SlotId)>,
    /// Sessions of the key that no longer exist under their start: a row written for one must
    /// go. (key, window as it was.)
    pub gone: Vec<(Box<str>, Window)>,
}

impl SlotTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table whose windows are sessions that merge.
    pub fn for_sessions() -> Self {
        Self {
            sessions: Some(HashMap::default()),
            ..Self::default()
        }
    }

    pub fn open_windows(&self) -> usize {
        self.slots.len()
    }

    fn intern(&mut self, key: &str) -> KeyId {
        if let Some(&id) = self.key_ids.get(key) {
            return id;
        }
        let name: Arc<str> = key.into();
        let value = Key {
            name: name.clone(),
            open_windows: 0,
        };
        let id = match self.free_keys.pop() {
            Some(id) => {
                self.keys[id.0 as usize] = Some(value);
                id
            }
            None => {
                self.keys.push(Some(value));
                KeyId(self.keys.len() as u32 - 1)
            }
        };
        self.key_ids.insert(name, id);
        id
    }

    /// The slot of a key's window, opened if needed; the window is marked changed.
    #[inline]
    pub fn slot_for(&mut self, key: &str, window: Window, partition: i32) -> SlotId {
        let key = self.intern(key);
        let slot = match self.slots.get(&(key, window.start)) {
            Some(&slot) => slot,
            None => self.open(key, window, partition),
        };
        self.mark_dirty(slot);
        slot
    }

    /// A window brought back from a checkpoint: open, and not changed since it was saved.
    pub fn reopen(&mut self, key: &str, window: Window, partition: i32) -> SlotId {
        let key = self.intern(key);
        match self.slots.get(&(key, window.start)) {
            Some(&slot) => slot,
            None => self.open(key, window, partition),
        }
    }

    fn open(&mut self, key: KeyId, window: Window, partition: i32) -> SlotId {
        let entry = Entry {
            key,
            window,
            partition,
            open: true,
            dirty: false,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.entries[slot.0 as usize] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                SlotId(self.entries.len() as u32 - 1)
            }
        };
        self.slots.insert((key, window.start), slot);
        self.by_end.entry(window.end).or_default().push(slot);
        if let Some(k) = self.keys[key.0 as usize].as_mut() {
            k.open_windows += 1;
        }
        if let Some(sessions) = self.sessions.as_mut() {
            sessions.entry(key).or_default().push(slot);
        }
        slot
    }

    /// Whether a key has a live session sharing a moment with `window`: a record that would be
    /// late on its own is not when it joins one.
    pub fn touches_session(&self, key: &str, window: Window, live: Live) -> bool {
        let (Some(sessions), Some(key)) = (self.sessions.as_ref(), self.key_ids.get(key)) else {
            return false;
        };
        sessions.get(key).is_some_and(|open| {
            open.iter().any(|s| {
                let w = self.entries[s.0 as usize].window;
                w.intersects(&window) && live.holds(w)
            })
        })
    }

    /// The session a record's own `window` joins: a new one, or the oldest it touches, grown to
    /// cover it and every other session it touches, which are merged into it (`changes`).
    pub fn session_for(
        &mut self,
        key: &str,
        window: Window,
        partition: i32,
        live: Live,
        changes: &mut SessionChanges,
    ) -> SlotId {
        let key_id = self.intern(key);
        let touched: Vec<SlotId> = self
            .sessions
            .as_ref()
            .and_then(|s| s.get(&key_id))
            .map(|open| {
                open.iter()
                    .copied()
                    .filter(|s| {
                        let w = self.entries[s.0 as usize].window;
                        w.intersects(&window) && live.holds(w)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(&into) = touched
            .iter()
            .min_by_key(|s| self.entries[s.0 as usize].window.start)
        else {
            return self.slot_for(key, window, partition);
        };
        let mut cover = window;
        for &slot in &touched {
            cover = cover.cover(&self.entries[slot.0 as usize].window);
        }
        for &from in touched.iter().filter(|&&s| s != into) {
            changes.merges.push((into, from));
            changes
                .gone
                .push((key.into(), self.entries[from.0 as usize].window));
            self.merge_away(from);
        }
        let old = self.entries[into.0 as usize].window;
        if cover != old {
            if cover.start != old.start {
                changes.gone.push((key.into(), old));
            }
            self.move_window(into, old, cover);
        }
        self.mark_dirty(into);
        into
    }

    fn mark_dirty(&mut self, slot: SlotId) {
        let entry = &mut self.entries[slot.0 as usize];
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// A slot's window grows to `to`: re-indexed under its new start and end.
    fn move_window(&mut self, slot: SlotId, from: Window, to: Window) {
        let key = self.entries[slot.0 as usize].key;
        self.slots.remove(&(key, from.start));
        self.slots.insert((key, to.start), slot);
        self.unlist_end(slot, from.end);
        self.by_end.entry(to.end).or_default().push(slot);
        self.entries[slot.0 as usize].window = to;
    }

    fn unlist_end(&mut self, slot: SlotId, end: EventTime) {
        if let Some(list) = self.by_end.get_mut(&end) {
            list.retain(|s| *s != slot);
            if list.is_empty() {
                self.by_end.remove(&end);
            }
        }
    }

    /// A session merged into another: gone from every index at once, its slot held until
    /// `settle`.
    fn merge_away(&mut self, slot: SlotId) {
        let entry = &mut self.entries[slot.0 as usize];
        entry.open = false;
        entry.dirty = false;
        let (key, window) = (entry.key, entry.window);
        self.slots.remove(&(key, window.start));
        self.unlist_end(slot, window.end);
        if let Some(open) = self.sessions.as_mut().and_then(|s| s.get_mut(&key)) {
            open.retain(|s| *s != slot);
        }
        if let Some(k) = self.keys[key.0 as usize].as_mut() {
            // The key keeps the session this one merged into.
            k.open_windows -= 1;
        }
        self.merged_away.push(slot);
    }

    /// Frees the slots merged away in this batch, for reuse.
    pub fn settle(&mut self) {
        self.free_slots.append(&mut self.merged_away);
    }

    /// The key and window a slot belongs to.
    pub fn describe(&self, slot: SlotId) -> (&str, Window) {
        let entry = &self.entries[slot.0 as usize];
        let name = self.keys[entry.key.0 as usize]
            .as_ref()
            .map_or("", |k| &k.name);
        (name, entry.window)
    }

    /// The partition whose records feed a slot.
    pub fn partition(&self, slot: SlotId) -> i32 {
        self.entries[slot.0 as usize].partition
    }

    /// The open windows fed by one partition: what moves when the partition does.
    pub fn of_partition(&self, partition: i32) -> Vec<SlotId> {
        self.by_end
            .values()
            .flatten()
            .copied()
            .filter(|s| self.entries[s.0 as usize].partition == partition)
            .collect()
    }

    /// Whether a window may have changed since the last `take_changed`: an update is due.
    pub fn any_changed(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Open windows changed since the last call, for update emits; clears their marks.
    pub fn take_changed(&mut self) -> Vec<SlotId> {
        let mut changed = std::mem::take(&mut self.dirty);
        changed.retain(|s| {
            let entry = &mut self.entries[s.0 as usize];
            let keep = entry.open && entry.dirty;
            entry.dirty = false;
            keep
        });
        changed
    }

    /// Windows that the watermarks have closed, oldest first: emit them, then `release` them.
    /// A window closes when its partition's closing watermark passes its end plus the lateness;
    /// `highest` bounds the scan.
    pub fn closed_by(
        &self,
        closing: impl Fn(i32) -> EventTime,
        highest: EventTime,
        allowed_lateness_ms: u64,
    ) -> Vec<SlotId> {
        let mut closed = Vec::new();
        for (end, slots) in &self.by_end {
            let window_end_plus = end.saturating_add(allowed_lateness_ms);
            if window_end_plus > highest {
                break;
            }
            closed.extend(
                slots
                    .iter()
                    .copied()
                    .filter(|s| window_end_plus <= closing(self.entries[s.0 as usize].partition)),
            );
        }
        closed
    }

    /// Every open window, oldest first: for the end of input.
    pub fn all_open(&self) -> Vec<SlotId> {
        self.by_end.values().flatten().copied().collect()
    }

    /// Frees closed windows' slots for reuse, and their keys once no window of theirs is open.
    /// Linear: each window end's list is filtered once, however many of its slots close.
    pub fn release(&mut self, slots: &[SlotId]) {
        let mut ends: Vec<EventTime> = Vec::new();
        for &slot in slots {
            let entry = &mut self.entries[slot.0 as usize];
            if !entry.open {
                continue;
            }
            entry.open = false;
            entry.dirty = false;
            let (key, window) = (entry.key, entry.window);
            self.slots.remove(&(key, window.start));
            if ends.last() != Some(&window.end) {
                ends.push(window.end);
            }
            self.free_slots.push(slot);
            if let Some(sessions) = self.sessions.as_mut() {
                if let Some(open) = sessions.get_mut(&key) {
                    open.retain(|s| *s != slot);
                    if open.is_empty() {
                        sessions.remove(&key);
                    }
                }
            }
            let key_entry = &mut self.keys[key.0 as usize];
            if let Some(k) = key_entry.as_mut() {
                k.open_windows -= 1;
                if k.open_windows == 0 {
                    self.key_ids.remove(&k.name);
                    *key_entry = None;
                    self.free_keys.push(key);
                }
            }
        }
        ends.sort_unstable();
        ends.dedup();
        let entries = &self.entries;
        for end in ends {
            if let Some(list) = self.by_end.get_mut(&end) {
                list.retain(|s| entries[s.0 as usize].open);
                if list.is_empty() {
                    self.by_end.remove(&end);
                }
            }
        }
    }

    /// Keys with at least one open window.
    pub fn keys(&self) -> usize {
        self.key_ids.len()
    }

    /// Whether a key has an open window.
    pub fn has_key(&self, key: &str) -> bool {
        self.key_ids.contains_key(key)
    }

    /// Whether a key's window starting at `start` is open.
    pub fn is_open(&self, key: &str, start: EventTime) -> bool {
        self.key_ids
            .get(key)
            .is_some_and(|&id| self.slots.contains_key(&(id, start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: i64, end: i64) -> Window {
        Window {
            start: EventTime::from_millis(start),
            end: EventTime::from_millis(end),
        }
    }

    const OPEN: Live = Live {
        watermark: EventTime::MIN,
        allowed_lateness_ms: 0,
    };

    /// Records at times `t` of one key with a gap of 5: what each does to the sessions.
    #[test]
    fn sessions_grow_and_merge_into_the_oldest() {
        let mut table = SlotTable::for_sessions();
        let mut changes = SessionChanges::default();
        let at = |table: &mut SlotTable, t: i64, changes: &mut SessionChanges| {
            table.session_for("a", span(t, t + 5), 0, OPEN, changes)
        };
        let first = at(&mut table, 10, &mut changes);
        let second = at(&mut table, 20, &mut changes);
        assert_ne!(first, second, "15 apart: two sessions");
        assert_eq!(at(&mut table, 14, &mut changes), first, "grows the first");
        assert_eq!(table.describe(first).1, span(10, 19));
        assert!(changes.merges.is_empty() && changes.gone.is_empty());
        // 17 touches both: the later one merges into the older, and its row is gone.
        assert_eq!(at(&mut table, 17, &mut changes), first);
        assert_eq!(table.describe(first).1, span(10, 25));
        assert_eq!(changes.merges, vec![(first, second)]);
        assert_eq!(changes.gone, vec![("a".into(), span(20, 25))]);
        assert_eq!(table.open_windows(), 1);
        // 5..10 only meets 10..25 at its end: a session of its own; 8 then bridges the two,
        // and the older start wins.
        let early = at(&mut table, 5, &mut changes);
        assert_ne!(early, first);
        assert_eq!(at(&mut table, 8, &mut changes), early);
        assert_eq!(table.describe(early).1, span(5, 25));
        assert_eq!(changes.merges.last(), Some(&(early, first)));
        assert_eq!(changes.gone.last(), Some(&("a".into(), span(10, 25))));
        // Merged-away slots wait for `settle` before they are reused.
        let other = table.session_for("b", span(100, 105), 0, OPEN, &mut changes);
        assert!(other != first && other != second);
        table.settle();
        let reused = table.session_for("c", span(200, 205), 0, OPEN, &mut changes);
        assert!(reused == first || reused == second);
        // The merged session closes at its end, once.
        let closed = table.closed_by(
            |_| EventTime::from_millis(25),
            EventTime::from_millis(25),
            0,
        );
        assert_eq!(closed, vec![early]);
    }

    #[test]
    fn a_session_the_watermark_passed_is_not_joined() {
        let mut table = SlotTable::for_sessions();
        let mut changes = SessionChanges::default();
        let old = table.session_for("a", span(0, 5), 0, OPEN, &mut changes);
        let passed = Live {
            watermark: EventTime::from_millis(5),
            allowed_lateness_ms: 0,
        };
        assert!(!table.touches_session("a", span(3, 8), passed));
        assert!(table.touches_session("a", span(3, 8), OPEN));
        let new = table.session_for("a", span(3, 8), 0, passed, &mut changes);
        assert_ne!(new, old);
        assert!(changes.merges.is_empty());
    }

    fn day(n: i64) -> Window {
        let d = 86_400_000;
        Window {
            start: EventTime::from_millis(n * d),
            end: EventTime::from_millis((n + 1) * d),
        }
    }

    #[test]
    fn a_key_and_window_keep_their_slot() {
        let mut t = SlotTable::new();
        let a = t.slot_for("p1", day(0), 0);
        assert_eq!(t.slot_for("p1", day(0), 0), a);
        assert_ne!(t.slot_for("p1", day(1), 0), a);
        assert_ne!(t.slot_for("p2", day(0), 0), a);
        assert_eq!(t.open_windows(), 3);
        assert_eq!(t.describe(a), ("p1", day(0)));
    }

    #[test]
    fn closed_slots_are_reused_and_keys_forgotten() {
        let mut t = SlotTable::new();
        let a = t.slot_for("p1", day(0), 0);
        let b = t.slot_for("p2", day(5), 0);
        let closed = t.closed_by(|_| day(0).end, day(0).end, 0);
        assert_eq!(closed, vec![a]);
        t.release(&closed);
        assert_eq!(t.open_windows(), 1);
        let c = t.slot_for("p3", day(7), 0);
        assert_eq!(c, a, "the freed slot number is handed out again");
        assert_eq!(t.describe(c), ("p3", day(7)));
        assert_eq!(t.describe(b), ("p2", day(5)));
        assert_eq!(t.key_ids.len(), 2, "p1 has no open window left");
    }

    #[test]
    fn changed_windows_are_reported_once() {
        let mut t = SlotTable::new();
        let a = t.slot_for("p1", day(0), 0);
        t.slot_for("p1", day(0), 0);
        assert_eq!(t.take_changed(), vec![a]);
        assert_eq!(t.take_changed(), vec![]);
        t.slot_for("p1", day(0), 0);
        t.release(&[a]);
        assert_eq!(
            t.take_changed(),
            vec![],
            "a released window is not emitted as an update"
        );
    }

    #[test]
    fn lateness_delays_closing() {
        let mut t = SlotTable::new();
        let a = t.slot_for("p1", day(0), 0);
        let end = day(0).end;
        assert!(t.closed_by(|_| end, end, 1).is_empty());
        let later = end.saturating_add(1);
        assert_eq!(t.closed_by(|_| later, later, 1), vec![a]);
        let b = t.slot_for("p2", day(0), 1);
        assert_eq!(
            t.closed_by(|p| if p == 0 { later } else { end }, later, 1),
            vec![a],
            "partition 1's watermark has not passed its window"
        );
        assert_eq!(t.of_partition(1), vec![b]);
        assert_eq!(t.all_open(), vec![a, b]);
    }

    #[test]
    fn releasing_many_windows_of_one_end_keeps_the_rest() {
        let mut t = SlotTable::new();
        let n = 20_000;
        let slots: Vec<SlotId> = (0..n)
            .map(|i| t.slot_for(&format!("k{i}"), day(0), 0))
            .collect();
        let other = t.slot_for("k0", day(1), 0);
        // Every other slot of day 0, in reverse, then the rest: the lists stay exact.
        let (odd, even): (Vec<SlotId>, Vec<SlotId>) =
            slots.iter().rev().copied().partition(|s| s.get() % 2 == 1);
        t.release(&odd);
        assert_eq!(t.open_windows(), n / 2 + 1);
        assert_eq!(t.all_open().len(), n / 2 + 1);
        assert!(t.all_open().iter().all(|s| s.get() % 2 == 0));
        assert_eq!(t.keys(), n / 2, "odd keys have no open window left");
        t.release(&even);
        t.release(&even);
        assert_eq!(t.all_open(), vec![other]);
        assert!(t.has_key("k0") && !t.has_key("k1"));
        assert!(t.is_open("k0", day(1).start) && !t.is_open("k0", day(0).start));
    }
}

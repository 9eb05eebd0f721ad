//! The host's half of the slot protocol: (key, window) → slot, so that keys never cross into
//! the plugin and the guest's accumulators sit in a dense array.

use std::collections::BTreeMap;
use std::collections::HashMap;

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
    name: Box<str>,
    open_windows: u32,
}

/// Open windows of one app on one host.
#[derive(Debug, Default)]
pub struct SlotTable {
    key_ids: HashMap<Box<str>, KeyId, RandomState>,
    keys: Vec<Option<Key>>,
    free_keys: Vec<KeyId>,
    slots: HashMap<(KeyId, EventTime), SlotId, RandomState>,
    entries: Vec<Entry>,
    free_slots: Vec<SlotId>,
    by_end: BTreeMap<EventTime, Vec<SlotId>>,
    dirty: Vec<SlotId>,
}

impl SlotTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open_windows(&self) -> usize {
        self.slots.len()
    }

    fn intern(&mut self, key: &str) -> KeyId {
        if let Some(&id) = self.key_ids.get(key) {
            return id;
        }
        let name: Box<str> = key.into();
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
        let entry = &mut self.entries[slot.0 as usize];
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(slot);
        }
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
        slot
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

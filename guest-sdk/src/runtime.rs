//! The guest half of the slot protocol: accumulators indexed by the host's slot numbers.

use alloc::string::String;
use alloc::vec::Vec;

use crate::types::{Batch, States};
use crate::{Aggregate, Record};

/// The app's accumulators, one per slot the host has handed out.
pub struct Slots<A> {
    accumulators: Vec<Option<A>>,
}

impl<A: Aggregate> Default for Slots<A> {
    fn default() -> Self {
        Self {
            accumulators: Vec::new(),
        }
    }
}

impl<A: Aggregate> Slots<A> {
    fn slot(&mut self, slot: u32) -> &mut A {
        let index = slot as usize;
        if index >= self.accumulators.len() {
            self.accumulators.resize_with(index + 1, || None);
        }
        self.accumulators[index].get_or_insert_with(A::default)
    }

    pub fn filter(input: &Batch, keep: impl Fn(&A::Input) -> bool) -> Vec<bool> {
        match A::Input::columns(input) {
            Ok(columns) => (0..input.rows as usize)
                .map(|row| keep(&A::Input::row(&columns, row)))
                .collect(),
            Err(_) => alloc::vec![false; input.rows as usize],
        }
    }

    pub fn accumulate(&mut self, slots: &[u32], input: &Batch) -> Result<(), String> {
        if slots.len() != input.rows as usize {
            return Err(alloc::format!(
                "{} slots for {} rows",
                slots.len(),
                input.rows
            ));
        }
        let columns = A::Input::columns(input)?;
        for (row, &slot) in slots.iter().enumerate() {
            let record = A::Input::row(&columns, row);
            self.slot(slot).add(&record);
        }
        Ok(())
    }

    pub fn merge(&mut self, into: &[u32], from: &[u32]) {
        for (&into, &from) in into.iter().zip(from) {
            let taken = self.slot(from);
            let taken = core::mem::take(taken);
            self.accumulators[from as usize] = None;
            self.slot(into).merge(taken);
        }
    }

    pub fn emit(&mut self, slots: &[u32]) -> Batch {
        let rows = slots.iter().map(|&slot| self.slot(slot).finish()).collect();
        A::Output::into_batch(rows)
    }

    pub fn close(&mut self, slots: &[u32]) {
        for &slot in slots {
            if let Some(acc) = self.accumulators.get_mut(slot as usize) {
                *acc = None;
            }
        }
    }

    pub fn snapshot(&mut self, slots: &[u32]) -> States {
        let mut offsets = Vec::with_capacity(slots.len() + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for &slot in slots {
            // Serde-derived state into a growable buffer only fails on a broken `Serialize`
            // impl; the panic traps and the host reports it as the app's error.
            bytes = postcard::to_extend(self.slot(slot), core::mem::take(&mut bytes))
                .unwrap_or_else(|e| panic!("slot {slot}: state does not serialize: {e}"));
            offsets.push(bytes.len() as u32);
        }
        States { offsets, bytes }
    }

    pub fn restore(&mut self, slots: &[u32], states: &States) -> Result<(), String> {
        if states.offsets.len() != slots.len() + 1 {
            return Err(alloc::format!(
                "{} offsets for {} slots",
                states.offsets.len(),
                slots.len()
            ));
        }
        for (i, &slot) in slots.iter().enumerate() {
            let (start, end) = (states.offsets[i] as usize, states.offsets[i + 1] as usize);
            let bytes = states.bytes.get(start..end).ok_or_else(|| {
                alloc::format!("slot {slot}: state bytes {start}..{end} out of range")
            })?;
            let (acc, rest): (A, &[u8]) = postcard::take_from_bytes(bytes)
                .map_err(|e| alloc::format!("slot {slot}: state does not decode: {e}"))?;
            // Bytes left over: state of another shape (another SDK's JSON, another state
            // version), which must be refused rather than read as numbers.
            if !rest.is_empty() {
                return Err(alloc::format!(
                    "slot {slot}: state does not decode: {} of its {} bytes left over (written by another SDK or state version?)",
                    rest.len(),
                    bytes.len()
                ));
            }
            *self.slot(slot) = acc;
        }
        Ok(())
    }
}

//! A partition's queue of fetched messages, served many per call through librdkafka's C API:
//! rdkafka's `PartitionQueue::poll` takes one message per call, with a lock, two or three clock
//! reads and an event to wrap and free each time, about a seventh of the platform's CPU on a
//! backlog. `rd_kafka_consume_callback_queue` takes the queue's lock once per call and hands
//! each message to a callback. (Not `rd_kafka_consume_batch_queue`: it moves the consumer's
//! position one past a partition-end event, so a pause, or the pause librdkafka makes around a
//! rebalance, resumes one record late; `backpressure` lost one record per partition with it.)

use std::any::Any;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;

use super::kafka::AppConsumer;
use crate::app::Message;

/// Another handle on the fetch queue of one partition that rdkafka's `split_partition_queue`
/// took out of the consumer's queue. It must go before the consumer does: `InputQueue` holds it
/// next to the split queue, which holds the consumer.
pub struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    client: NonNull<rd::rd_kafka_t>,
}

// SAFETY: librdkafka's queues and client are locked inside; the handle is used by one thread at
// a time.
unsafe impl Send for FetchQueue {}

/// One message served: a record, the partition's end, or an error.
pub enum Served<'a> {
    Record(Message<'a>),
    End,
    /// The consumer could not read at `offset` (a batch it cannot decompress, a refused
    /// fetch): librdkafka's own account, which says what and where.
    Error {
        partition: i32,
        offset: i64,
        reason: String,
    },
}

/// What one call found.
pub struct Serving {
    /// Records handed over (at most the call's `max`).
    pub records: usize,
    /// The last thing served was the partition's end.
    pub at_end: bool,
}

impl FetchQueue {
    /// `None` when librdkafka does not know the partition.
    pub fn of(consumer: &AppConsumer, topic: &str, partition: i32) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        let client = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: the client pointer is valid while `consumer` lives; librdkafka copies the name.
        let queue =
            unsafe { rd::rd_kafka_queue_get_partition(client.as_ptr(), topic.as_ptr(), partition) };
        Some(Self {
            queue: NonNull::new(queue)?,
            client,
        })
    }

    /// Hands the messages already fetched to `each`, in order, without waiting, until `max`
    /// records were handed over or the queue is empty. `topic` is the queue's topic.
    pub fn serve(&self, topic: &str, max: usize, each: &mut dyn FnMut(Served<'_>)) -> Serving {
        let mut call = Call {
            topic,
            each,
            max,
            client: self.client,
            serving: Serving {
                records: 0,
                at_end: false,
            },
            panic: None,
        };
        if max > 0 {
            // SAFETY: the queue handle is valid until dropped; `call` outlives the call, and
            // librdkafka passes it back only to `served`, on this thread, during the call.
            unsafe {
                rd::rd_kafka_consume_callback_queue(
                    self.queue.as_ptr(),
                    0,
                    Some(served),
                    std::ptr::from_mut(&mut call).cast::<c_void>(),
                );
            }
        }
        if let Some(panic) = call.panic {
            resume_unwind(panic);
        }
        call.serving
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_partition` and is destroyed once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// One `serve` call, as the callback sees it.
struct Call<'a, 'f> {
    topic: &'a str,
    each: &'f mut dyn FnMut(Served<'_>),
    max: usize,
    client: NonNull<rd::rd_kafka_t>,
    serving: Serving,
    /// A panic of `each`, carried past librdkafka's frames and raised again after the call.
    panic: Option<Box<dyn Any + Send>>,
}

/// librdkafka's consume callback: one message, freed by librdkafka when this returns.
unsafe extern "C" fn served(message: *mut rd::rd_kafka_message_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Call` that `serve` passed, alive and not otherwise borrowed
    // during the call.
    let call = unsafe { &mut *opaque.cast::<Call<'_, '_>>() };
    if call.panic.is_some() || message.is_null() {
        return;
    }
    // SAFETY: librdkafka hands a valid message that lives until this function returns.
    let m = unsafe { &*message };
    let item = if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: as above; librdkafka writes the timestamp's kind.
        let timestamp = unsafe { rd::rd_kafka_message_timestamp(message, &mut kind) };
        Served::Record(Message {
            topic: call.topic,
            partition: m.partition,
            offset: m.offset,
            // SAFETY: librdkafka's buffers hold `key_len` and `len` bytes while the message
            // lives, which is longer than `each` may keep them.
            key: unsafe { bytes(m.key, m.key_len) },
            payload: unsafe { bytes(m.payload, m.len) },
            timestamp: (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
                .then_some(timestamp),
        })
    } else if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
        Served::End
    } else {
        // SAFETY: librdkafka returns a static string for every code.
        let code = unsafe { std::ffi::CStr::from_ptr(rd::rd_kafka_err2str(m.err)) };
        let code = code.to_string_lossy();
        // An error message carries librdkafka's account of it as its payload (what
        // `rd_kafka_message_errstr`, an inline function, returns).
        // SAFETY: as for a record's payload.
        let reason = match unsafe { bytes(m.payload, m.len) } {
            Some(text) => {
                let text = String::from_utf8_lossy(text);
                let text = text.trim_end_matches('\0');
                if text.contains(code.as_ref()) {
                    text.to_owned()
                } else {
                    format!("{text} ({code})")
                }
            }
            None => code.into_owned(),
        };
        Served::Error {
            partition: m.partition,
            offset: m.offset,
            reason,
        }
    };
    match &item {
        Served::Record(_) => {
            call.serving.records += 1;
            call.serving.at_end = false;
        }
        Served::End => call.serving.at_end = true,
        Served::Error { .. } => {}
    }
    let each = &mut call.each;
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| each(item))) {
        call.panic = Some(panic);
    }
    if call.serving.records >= call.max || call.panic.is_some() {
        // SAFETY: the client outlives the queue handle; this only marks the calling thread, so
        // librdkafka puts the messages not served back at the queue's head and returns.
        unsafe { rd::rd_kafka_yield(call.client.as_ptr()) }
    }
}

/// A buffer librdkafka owns as a slice; `None` for a null pointer (no key, no payload).
///
/// # Safety
/// `data` must point to `len` readable bytes for as long as the slice is used.
unsafe fn bytes<'a>(data: *mut c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: the caller's promise.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

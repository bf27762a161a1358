//! What collection tells people, one function per message; the words are in
//! `core/templates/<kind>.*`.

use chrono::{DateTime, Utc};
use minijinja::context;

use crate::billing::Money;
use crate::exchange::deposit::{contact_words, when};
use crate::messaging::otp::{Code, VALIDITY};
use crate::messaging::outbox::{Message, Recipient};

/// One code of a code message: which door it opens and why.
pub struct CodeLine<'a> {
    pub code: &'a Code,
    pub door_no: i32,
    pub item_name: &'a str,
    pub is_return: bool,
}

/// The codes for everything waiting for one person at one point, in one
/// message (one at a locker). Sensitive: blanked once delivered.
pub fn codes(to: Recipient, point_name: &str, lines: &[CodeLine<'_>]) -> Message {
    let lines: Vec<_> = lines
        .iter()
        .map(|l| context! { code => l.code.expose(), door => l.door_no, item => l.item_name, is_return => l.is_return })
        .collect();
    let context = context! { place => point_name, minutes => VALIDITY.as_secs() / 60, lines };
    Message { to, kind: "pickup_codes", context, sensitive: true }
}

/// To the sender: their item was collected, and what the stay cost.
pub fn collected(to: Recipient, item_name: &str, at: DateTime<Utc>, amount: &Money, hours: i32) -> Message {
    let context = context! { item => item_name, at => when(at), amount => amount.to_string(), hours };
    Message { to, kind: "item_collected", context, sensitive: false }
}

/// To the receiver: a receipt for what they took.
pub fn receipt(to: Recipient, item_name: &str, point_name: &str, door_no: i32, at: DateTime<Utc>) -> Message {
    let context = context! { item => item_name, place => point_name, door => door_no, at => when(at) };
    Message { to, kind: "pickup_receipt", context, sensitive: false }
}

/// To the sender: they took their expired item back, and what the stay cost.
pub fn returned(to: Recipient, item_name: &str, at: DateTime<Utc>, amount: &Money, hours: i32) -> Message {
    let context = context! { item => item_name, at => when(at), amount => amount.to_string(), hours };
    Message { to, kind: "item_returned", context, sensitive: false }
}

/// To whoever typed the code: the door did not open; staff know.
pub fn open_failed(to: Recipient, item_name: &str, point_name: &str, door_no: i32) -> Message {
    let context = context! { item => item_name, place => point_name, door => door_no };
    Message { to, kind: "pickup_failed", context, sensitive: false }
}

/// To the sender: nobody collected the item in time; how to take it back.
pub fn expired(to: Recipient, item_name: &str, point_name: &str, door_no: i32, return_by: DateTime<Utc>) -> Message {
    let context = context! { item => item_name, place => point_name, door => door_no, return_by => when(return_by) };
    Message { to, kind: "item_expired", context, sensitive: false }
}

/// To the sender: the return window ended; billing stopped; staff take over.
pub fn abandoned(to: Recipient, item_name: &str, amount: &Money, hours: i32) -> Message {
    let context = context! { item => item_name, amount => amount.to_string(), hours };
    Message { to, kind: "item_abandoned", context, sensitive: false }
}

/// Where a stored item waits, for [`pickup_reminder`].
pub struct Waiting<'a> {
    pub item_name: &'a str,
    pub point_name: &'a str,
    pub address: &'a str,
    pub door_no: i32,
    /// The end of the pickup window.
    pub pickup_by: DateTime<Utc>,
}

/// To the receiver, once, while the item still waits: where, until when, and
/// how to collect it (with the contact this message goes to).
pub fn pickup_reminder(to: Recipient, waiting: &Waiting<'_>) -> Message {
    let context = context! {
        item => waiting.item_name,
        place => waiting.point_name,
        address => waiting.address,
        door => waiting.door_no,
        pickup_by => when(waiting.pickup_by),
        contact => contact_words(&to),
    };
    Message { to, kind: "pickup_reminder", context, sensitive: false }
}

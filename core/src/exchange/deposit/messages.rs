//! Telling people about their deposit.

use chrono::{DateTime, Utc};
use minijinja::{Value, context};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::accounts::contact::{Email, Phone};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::items::{Item, mask_email, mask_phone};
use crate::messaging::outbox::{self, Message, Recipient};

/// Where an item is and how its sender is reached, for messages.
pub(crate) struct PlaceOf {
    pub name: String,
    pub address: String,
    /// The sender: email (always proven), and SMS when they have proven a phone.
    pub sender: Vec<Recipient>,
}

/// The point of item `item_id` and its sender's contacts, in one query.
pub(crate) async fn place_of(conn: &mut PgConnection, item_id: Uuid) -> Result<PlaceOf, DbError> {
    let (name, address, email, phone): (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT p.name, p.address, u.email, CASE WHEN u.phone_verified_at IS NOT NULL THEN u.phone END
         FROM items i JOIN lockers l ON l.id = i.locker_id JOIN locker_points p ON p.id = l.point_id
         JOIN users u ON u.id = i.sender_id WHERE i.id = $1",
    )
    .bind(item_id)
    .fetch_one(conn)
    .await
    .during("read an item's point and sender")?;
    let email = Email::parse(&email).ok().map(Recipient::Email);
    let phone = phone.as_deref().and_then(|p| Phone::parse(p).ok()).map(Recipient::Sms);
    Ok(PlaceOf { name, address, sender: email.into_iter().chain(phone).collect() })
}

/// The receiver's channels: SMS to a phone, email to an address, both if both.
pub(super) fn receiver_recipients(item: &Item) -> Vec<Recipient> {
    let phone = item.receiver_phone.as_deref().and_then(|p| Phone::parse(p).ok()).map(Recipient::Sms);
    let email = item.receiver_email.as_deref().and_then(|e| Email::parse(e).ok()).map(Recipient::Email);
    phone.into_iter().chain(email).collect()
}

/// A message to the sender, whichever way it goes: a template kind and its context.
pub(crate) struct Note {
    pub kind: &'static str,
    pub context: Value,
}

impl Note {
    /// The note as one message per channel of the sender's.
    pub(crate) fn for_sender(self, place: &PlaceOf) -> Vec<Message> {
        let Note { kind, context } = self;
        let message = |to: &Recipient| Message { to: to.clone(), kind, context: context.clone(), sensitive: false };
        place.sender.iter().map(message).collect()
    }
}

/// Queues `note` to the sender of the item at `place`.
pub(crate) async fn tell_sender(conn: &mut PgConnection, place: &PlaceOf, note: Note) -> Result<(), ExchangeError> {
    outbox::queue_all(conn, &note.for_sender(place)).await?;
    Ok(())
}

// The deposit's messages, one function each; the words are in `core/templates/<kind>.*`.

fn receiver_hint(item: &Item) -> String {
    match (&item.receiver_phone, &item.receiver_email) {
        (Some(phone), _) => mask_phone(phone),
        (None, Some(email)) => mask_email(email),
        (None, None) => "the receiver".to_owned(),
    }
}

/// A moment as messages show it: `2026-11-22 14:05 UTC`.
pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How the receiver asks for a code: with the contact this message went to.
pub(crate) fn contact_words(to: &Recipient) -> &'static str {
    match to {
        Recipient::Sms(_) => "this phone number",
        Recipient::Email(_) => "this email address",
    }
}

/// To the receiver: where the item is and how to collect it.
pub fn stored_for_receiver(to: Recipient, item: &Item, place: &PlaceOf) -> Message {
    let context = context! {
        item => &item.name,
        place => &place.name,
        address => &place.address,
        door => item.door_no,
        pickup_by => item.pickup_by.map(when).unwrap_or_default(),
        contact => contact_words(&to),
    };
    Message { to, kind: "item_stored_receiver", context, sensitive: false }
}

pub fn stored_for_sender(item: &Item, place: &PlaceOf) -> Note {
    let context = context! {
        item => &item.name,
        place => &place.name,
        address => &place.address,
        door => item.door_no,
        receiver => receiver_hint(item),
    };
    Note { kind: "item_stored_sender", context }
}

/// The item, its place and door: what most notes to the sender name.
fn at_door(item: &Item, place: &PlaceOf) -> Value {
    context! { item => &item.name, place => &place.name, door => item.door_no }
}

pub fn dropoff_failed(item: &Item, place: &PlaceOf) -> Note {
    Note { kind: "dropoff_failed", context: at_door(item, place) }
}

pub fn reservation_expired(item: &Item, place: &PlaceOf) -> Note {
    Note { kind: "reservation_expired", context: at_door(item, place) }
}

pub fn close_the_door(item: &Item, place: &PlaceOf) -> Note {
    Note { kind: "door_left_open", context: at_door(item, place) }
}

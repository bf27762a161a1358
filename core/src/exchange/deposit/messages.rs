//! Telling people about their deposit.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::accounts::contact::{Email, Phone};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::items::{Item, mask_email, mask_phone};
use crate::messaging::outbox::{self, Message, Recipient};

/// Where an item is, for messages.
pub(crate) struct PlaceOf {
    pub name: String,
    pub address: String,
}

pub(crate) async fn place_of(conn: &mut PgConnection, item: &Item) -> Result<PlaceOf, DbError> {
    let (name, address): (String, String) = sqlx::query_as("SELECT name, address FROM locker_points WHERE id = $1")
        .bind(item.point_id)
        .fetch_one(conn)
        .await
        .during("read an item's point")?;
    Ok(PlaceOf { name, address })
}

/// The receiver's channels: SMS to a phone, email to an address, both if both.
pub(super) fn receiver_recipients(item: &Item) -> Vec<Recipient> {
    let phone = item.receiver_phone.as_deref().and_then(|p| Phone::parse(p).ok()).map(Recipient::Sms);
    let email = item.receiver_email.as_deref().and_then(|e| Email::parse(e).ok()).map(Recipient::Email);
    phone.into_iter().chain(email).collect()
}

/// A message to the sender, whichever way it goes.
pub(crate) struct Note {
    pub kind: &'static str,
    pub subject: String,
    pub body: String,
}

/// Queues `note` to the sender: by email (always proven), and by SMS when
/// they have proven a phone.
pub(crate) async fn tell_sender(conn: &mut PgConnection, item: &Item, note: Note) -> Result<(), ExchangeError> {
    let (email, phone): (String, Option<String>) =
        sqlx::query_as("SELECT email, CASE WHEN phone_verified_at IS NOT NULL THEN phone END FROM users WHERE id = $1")
            .bind(item.sender_id)
            .fetch_one(&mut *conn)
            .await
            .during("read an item's sender")?;
    let Note { kind, subject, body } = note;
    let email = Email::parse(&email).ok().map(Recipient::Email);
    let phone = phone.as_deref().and_then(|p| Phone::parse(p).ok()).map(Recipient::Sms);
    for to in email.into_iter().chain(phone) {
        let message = Message { to, kind, subject: subject.clone(), body: body.clone(), sensitive: false };
        outbox::queue(conn, &message).await?;
    }
    Ok(())
}

// The texts of the deposit's messages, one function each (plain text until templates come).

fn receiver_hint(item: &Item) -> String {
    match (&item.receiver_phone, &item.receiver_email) {
        (Some(phone), _) => mask_phone(phone),
        (None, Some(email)) => mask_email(email),
        (None, None) => "the receiver".to_owned(),
    }
}

fn date(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(String::new, |at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// To the receiver: where the item is and how to collect it.
pub fn stored_for_receiver(to: Recipient, item: &Item, place: &PlaceOf) -> Message {
    let how = match &to {
        Recipient::Sms(_) => "this phone number",
        Recipient::Email(_) => "this email address",
    };
    Message {
        to,
        kind: "item_stored_receiver",
        subject: "A parcel is waiting for you".to_owned(),
        body: format!(
            "Lockers: a parcel ({}) is waiting for you at {}, {}, locker door {}. To collect it, ask for a \
             code at the locker or at the point's screen with {how}. Collect it by {}.",
            item.name,
            place.name,
            place.address,
            item.door_no,
            date(item.pickup_by)
        ),
        sensitive: false,
    }
}

pub fn stored_for_sender(item: &Item, place: &PlaceOf) -> Note {
    Note {
        kind: "item_stored_sender",
        subject: "Your parcel is stored".to_owned(),
        body: format!(
            "Lockers: your parcel ({}) is stored at {}, {}, door {}. We told {} how to collect it.",
            item.name,
            place.name,
            place.address,
            item.door_no,
            receiver_hint(item)
        ),
    }
}

pub fn dropoff_failed(item: &Item, place: &PlaceOf) -> Note {
    Note {
        kind: "dropoff_failed",
        subject: "Your drop-off could not go ahead".to_owned(),
        body: format!(
            "Lockers: the door of locker {} at {} could not be opened, so your reservation for {} is \
             cancelled and nothing is charged. Please reserve another locker.",
            item.door_no, place.name, item.name
        ),
    }
}

pub fn reservation_expired(item: &Item, place: &PlaceOf) -> Note {
    Note {
        kind: "reservation_expired",
        subject: "Your reservation expired".to_owned(),
        body: format!(
            "Lockers: your reservation of locker {} at {} for {} expired before the drop-off and is \
             cancelled. Nothing is charged.",
            item.door_no, place.name, item.name
        ),
    }
}

pub fn close_the_door(item: &Item, place: &PlaceOf) -> Note {
    Note {
        kind: "door_left_open",
        subject: "Please close the locker door".to_owned(),
        body: format!(
            "Lockers: the door of locker {} at {} is still open. Please close it firmly; our staff have \
             been told.",
            item.door_no, place.name
        ),
    }
}

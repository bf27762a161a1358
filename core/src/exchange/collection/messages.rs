//! What collection tells people, one function per message so each moves to
//! a template on its own later. Plain text for now.

use chrono::{DateTime, Utc};

use crate::billing::Money;
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
    let minutes = VALIDITY.as_secs() / 60;
    let what = |l: &CodeLine<'_>| {
        let verb = if l.is_return { "take back" } else { "collect" };
        format!("{} to {verb} \"{}\" from door {}", l.code.expose(), l.item_name, l.door_no)
    };
    let body = match lines {
        [one] => format!(
            "Lockers: {} at {point_name}. It expires in {minutes} minutes. Never share it with anyone.",
            what(one)
        ),
        many => format!(
            "Lockers: your codes at {point_name}: {}. Each works once and expires in {minutes} minutes. \
             Never share them with anyone.",
            many.iter().map(what).collect::<Vec<_>>().join("; ")
        ),
    };
    Message { to, kind: "pickup_codes", subject: "Your Lockers code".to_owned(), body, sensitive: true }
}

/// To the sender: their item was collected, and what the stay cost.
pub fn collected(to: Recipient, item_name: &str, at: DateTime<Utc>, amount: &Money, hours: i32) -> Message {
    Message {
        to,
        kind: "item_collected",
        subject: format!("\"{item_name}\" was collected"),
        body: format!(
            "Lockers: \"{item_name}\" was collected at {}. The stay cost {amount} ({hours} started hour(s)).",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        sensitive: false,
    }
}

/// To the receiver: a receipt for what they took.
pub fn receipt(to: Recipient, item_name: &str, point_name: &str, door_no: i32, at: DateTime<Utc>) -> Message {
    Message {
        to,
        kind: "pickup_receipt",
        subject: format!("You collected \"{item_name}\""),
        body: format!(
            "Lockers: you collected \"{item_name}\" from door {door_no} at {point_name} at {}. Thank you.",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        sensitive: false,
    }
}

/// To the sender: they took their expired item back, and what the stay cost.
pub fn returned(to: Recipient, item_name: &str, at: DateTime<Utc>, amount: &Money, hours: i32) -> Message {
    Message {
        to,
        kind: "item_returned",
        subject: format!("You took back \"{item_name}\""),
        body: format!(
            "Lockers: you took back \"{item_name}\" at {}. The stay cost {amount} ({hours} started hour(s)).",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        sensitive: false,
    }
}

/// To whoever typed the code: the door did not open; staff know.
pub fn open_failed(to: Recipient, item_name: &str, point_name: &str, door_no: i32) -> Message {
    Message {
        to,
        kind: "pickup_failed",
        subject: format!("Door {door_no} did not open"),
        body: format!(
            "Lockers: door {door_no} at {point_name} did not open for \"{item_name}\". Your item is safe inside and \
             you will not be charged past the moment you typed your code. Please contact support; staff have been alerted."
        ),
        sensitive: false,
    }
}

/// To the sender: nobody collected the item in time; how to take it back.
pub fn expired(to: Recipient, item_name: &str, point_name: &str, door_no: i32, return_by: DateTime<Utc>) -> Message {
    Message {
        to,
        kind: "item_expired",
        subject: format!("\"{item_name}\" was not collected"),
        body: format!(
            "Lockers: \"{item_name}\" was not collected in time from door {door_no} at {point_name}. To take it back, \
             ask for a return code at the locker (or the point's screen) with your account's email or phone, by {}. \
             Storage is charged until then.",
            return_by.format("%Y-%m-%d %H:%M UTC")
        ),
        sensitive: false,
    }
}

/// To the sender: the return window ended; billing stopped; staff take over.
pub fn abandoned(to: Recipient, item_name: &str, amount: &Money, hours: i32) -> Message {
    Message {
        to,
        kind: "item_abandoned",
        subject: format!("\"{item_name}\" was not taken back"),
        body: format!(
            "Lockers: the time to take back \"{item_name}\" is over. Billing stopped at the deadline: {amount} \
             ({hours} started hour(s)). Staff will clear the locker; contact support to arrange its return."
        ),
        sensitive: false,
    }
}

/// To the receiver, once, a while after the item was stored: it is still
/// waiting, where, and until when.
pub fn pickup_reminder(
    to: Recipient,
    item_name: &str,
    point_name: &str,
    address: &str,
    door_no: i32,
    pickup_by: DateTime<Utc>,
) -> Message {
    let how = match &to {
        Recipient::Sms(_) => "this phone number",
        Recipient::Email(_) => "this email address",
    };
    Message {
        to,
        kind: "pickup_reminder",
        subject: format!("Reminder: \"{item_name}\" is waiting for you"),
        body: format!(
            "Lockers: reminder, \"{item_name}\" is still waiting for you at {point_name}, {address}, locker door \
             {door_no}. Collect it by {}: ask for a code at the locker or at the point's screen with {how}.",
            pickup_by.format("%Y-%m-%d %H:%M UTC")
        ),
        sensitive: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::contact::Phone;

    fn to() -> Recipient {
        Recipient::Sms(Phone::parse("+919812345678").unwrap())
    }

    #[test]
    fn one_code_names_its_door_and_point_and_is_sensitive() {
        let code = Code::parse("042917").unwrap();
        let line = CodeLine { code: &code, door_no: 7, item_name: "Books", is_return: false };
        let message = codes(to(), "MG Road", &[line]);
        assert!(message.sensitive);
        assert!(message.body.contains("042917 to collect \"Books\" from door 7 at MG Road"), "{}", message.body);
    }

    #[test]
    fn several_codes_go_in_one_message_each_with_its_door() {
        let (a, b) = (Code::parse("111111").unwrap(), Code::parse("222222").unwrap());
        let lines = [
            CodeLine { code: &a, door_no: 1, item_name: "Books", is_return: false },
            CodeLine { code: &b, door_no: 3, item_name: "Shoes", is_return: true },
        ];
        let body = codes(to(), "MG Road", &lines).body;
        assert!(body.contains("111111 to collect \"Books\" from door 1"), "{body}");
        assert!(body.contains("222222 to take back \"Shoes\" from door 3"), "{body}");
    }

    #[test]
    fn the_sender_reads_the_amount_in_major_units() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let message = collected(to(), "Books", at, &Money::new(10_000, "INR"), 2);
        assert!(!message.sensitive);
        assert!(message.body.contains("INR 100.00 (2 started hour(s))"), "{}", message.body);
    }
}

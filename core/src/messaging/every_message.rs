//! Renders every product message through its builder and checks the facts it
//! must carry, by SMS and by email (subject, text, HTML), that nothing a user
//! typed reaches the HTML unescaped, and which SMS run past 160 GSM-7
//! characters (the README lists them).

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use crate::accounts::contact::{Email, Phone};
use crate::billing::Money;
use crate::exchange::alerts::{Alert, admin_alert};
use crate::exchange::collection::messages::{self, CodeLine, Waiting};
use crate::exchange::deposit::{self, PlaceOf};
use crate::exchange::force_clear::removed;
use crate::exchange::items::{Item, ItemStatus};
use crate::messaging::otp::{Code, Purpose};
use crate::messaging::outbox::{Message, Recipient, one_time_code};
use crate::messaging::templates::{Rendered, gsm7_len};

const PHONE: &str = "+919876543210";
const EMAIL: &str = "asha@example.com";
/// A place name someone typed with markup in it.
const HOSTILE: &str = "<script>alert(1)</script> & Co";

fn sms() -> Recipient {
    Recipient::Sms(Phone::parse(PHONE).unwrap())
}

fn email() -> Recipient {
    Recipient::Email(Email::parse(EMAIL).unwrap())
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 14, 5, 0).unwrap()
}

fn code() -> Code {
    Code::parse("042917").unwrap()
}

fn place() -> PlaceOf {
    PlaceOf { name: "Koramangala Hub".to_owned(), address: "80 Feet Road, Bengaluru".to_owned(), sender: Vec::new() }
}

fn item() -> Item {
    Item {
        id: Uuid::nil(),
        locker_id: Uuid::nil(),
        point_id: Uuid::nil(),
        door_no: 7,
        sender_id: Uuid::nil(),
        name: "Books".to_owned(),
        description: None,
        receiver_phone: Some(PHONE.to_owned()),
        receiver_email: Some(EMAIL.to_owned()),
        status: ItemStatus::Stored,
        reserved_at: at(),
        dropoff_by: at(),
        stored_at: Some(at()),
        pickup_by: Some(at() + Duration::hours(72)),
        closed_at: None,
        dropoff_requested_at: None,
        dropoff_opened_at: None,
        door_left_open_at: None,
        pickup_window_secs: 259_200,
        collect_requested_at: None,
        pickup_failed_at: None,
        return_by: None,
    }
}

fn inr(minor: i64) -> Money {
    Money::new(minor, "INR")
}

/// A note to the sender, as `tell_sender` sends it to `to`.
fn note(to: Recipient, note: deposit::Note) -> Message {
    Message { to, kind: note.kind, context: note.context, sensitive: false }
}

fn waiting<'a>(place: &'a PlaceOf) -> Waiting<'a> {
    Waiting {
        item_name: "Books",
        point_name: &place.name,
        address: &place.address,
        door_no: 7,
        pickup_by: at() + Duration::hours(72),
    }
}

/// Every message kind built for `to`, with the facts each must carry (in the
/// SMS and in the email's text and HTML parts).
fn every_message(to: fn() -> Recipient) -> Vec<(Message, Vec<&'static str>)> {
    let (item, place) = (item(), place());
    let code = code();
    let second = Code::parse("135790").unwrap();
    let one = [CodeLine { code: &code, door_no: 7, item_name: "Books", is_return: false }];
    let two = [
        CodeLine { code: &code, door_no: 7, item_name: "Books", is_return: false },
        CodeLine { code: &second, door_no: 2, item_name: "Shoes", is_return: true },
    ];
    let code_facts = vec!["042917", "10 minutes", "Never share"];
    let alert = Alert {
        event: "door_left_open",
        locker_id: Uuid::from_u128(7),
        item_id: None,
        summary: "The drop-off door of locker 7 at Koramangala Hub was not reported closed.",
    };
    let mut all = vec![
        (one_time_code(to(), Purpose::Verify, &code), [code_facts.clone(), vec!["confirm your contact"]].concat()),
        (one_time_code(to(), Purpose::Login, &code), [code_facts.clone(), vec!["sign in"]].concat()),
        (one_time_code(to(), Purpose::Reset, &code), [code_facts.clone(), vec!["reset your password"]].concat()),
        (one_time_code(to(), Purpose::Pickup, &code), [code_facts.clone(), vec!["collect your item"]].concat()),
        (one_time_code(to(), Purpose::Return, &code), [code_facts.clone(), vec!["take back your item"]].concat()),
        (
            deposit::stored_for_receiver(to(), &item, &place),
            vec!["Books", "Koramangala Hub", "80 Feet Road, Bengaluru", "door 7", "2026-11-25 14:05 UTC", "for a code"],
        ),
        (
            note(to(), deposit::stored_for_sender(&item, &place)),
            vec!["Books", "is stored", "Koramangala Hub", "door 7", "+91******3210"],
        ),
        (note(to(), deposit::dropoff_failed(&item, &place)), vec!["Books", "Koramangala Hub", "7", "cancelled"]),
        (note(to(), deposit::reservation_expired(&item, &place)), vec!["Books", "Koramangala Hub", "7", "expired"]),
        (note(to(), deposit::close_the_door(&item, &place)), vec!["Koramangala Hub", "7", "still open"]),
        (
            messages::codes(to(), "Koramangala Hub", &one),
            vec!["042917", "collect", "Books", "door 7", "Koramangala Hub", "10 minutes", "Never share"],
        ),
        (
            messages::codes(to(), "Koramangala Hub", &two),
            vec!["042917", "Books", "door 7", "135790", "take back", "Shoes", "door 2", "Never share"],
        ),
        (
            messages::collected(to(), "Books", at(), &inr(10_000), 2),
            vec!["Books", "collected", "2026-11-22 14:05 UTC", "INR 100.00", "2 started hours"],
        ),
        (
            messages::receipt(to(), "Books", "Koramangala Hub", 7, at()),
            vec!["Books", "door", "7", "Koramangala Hub", "2026-11-22 14:05 UTC"],
        ),
        (
            messages::returned(to(), "Books", at(), &inr(5_000), 1),
            vec!["Books", "took back", "INR 50.00", "1 started hour"],
        ),
        (
            messages::open_failed(to(), "Books", "Koramangala Hub", 7),
            vec!["Books", "Koramangala Hub", "7", "did not open"],
        ),
        (
            messages::expired(to(), "Books", "Koramangala Hub", 7, at()),
            vec!["Books", "not collected", "Koramangala Hub", "7", "2026-11-22 14:05 UTC", "return code"],
        ),
        (messages::abandoned(to(), "Books", &inr(360_000), 72), vec!["Books", "INR 3600.00", "contact support"]),
        (
            messages::pickup_reminder(to(), &waiting(&place)),
            vec!["Books", "Koramangala Hub", "80 Feet Road, Bengaluru", "door 7", "2026-11-25 14:05 UTC", "for a code"],
        ),
        (
            note(to(), removed("Books", "Koramangala Hub", 7, Some(&inr(5_000)))),
            vec!["Books", "removed", "Koramangala Hub", "7", "INR 50.00"],
        ),
        (note(to(), removed("Books", "Koramangala Hub", 7, None)), vec!["Books", "removed", "Nothing is charged"]),
    ];
    if let Recipient::Email(address) = to() {
        all.push((admin_alert(address, &alert), vec!["door left open", "not reported closed", ZERO_SEVEN]));
    }
    all
}

/// `Uuid::from_u128(7)` as text.
const ZERO_SEVEN: &str = "00000000-0000-0000-0000-000000000007";

fn rendered(message: &Message) -> Rendered {
    message.render().unwrap_or_else(|e| panic!("{e}"))
}

/// What an HTML part reads as: its text without the tags.
fn words_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_sms_carries_its_facts_and_nothing_else_of_email() {
    for (message, facts) in every_message(sms) {
        let Rendered { subject, text, html } = rendered(&message);
        assert!(subject.is_none() && html.is_none(), "{}", message.kind);
        assert!(text.starts_with("Lockers"), "{}: {text}", message.kind);
        for fact in facts {
            assert!(text.contains(fact), "{}: `{fact}` missing from {text}", message.kind);
        }
    }
}

#[test]
fn every_email_carries_its_facts_in_the_text_and_the_html_part() {
    for (message, facts) in every_message(email) {
        let Rendered { subject, text, html } = rendered(&message);
        let (subject, html) = (subject.unwrap(), html.unwrap());
        assert!(!subject.is_empty() && !subject.contains('\n'), "{}: {subject}", message.kind);
        assert!(html.starts_with("<!doctype html>"), "{}: {html}", message.kind);
        let title = subject.replace('&', "&amp;").replace('"', "&quot;");
        assert!(html.contains(&format!("<title>{title}</title>")), "{}: {html}", message.kind);
        let html_words = words_of(&html);
        for fact in facts {
            assert!(text.contains(fact), "{}: `{fact}` missing from the text: {text}", message.kind);
            assert!(html_words.contains(fact), "{}: `{fact}` missing from the HTML: {html}", message.kind);
        }
        assert!(!text.contains('<'), "{}: markup in the text part: {text}", message.kind);
    }
}

#[test]
fn codes_go_on_the_code_queue_and_notices_do_not() {
    for (message, _) in every_message(email) {
        let has_code = rendered(&message).text.contains("042917");
        assert_eq!(message.sensitive, has_code, "{}", message.kind);
    }
}

#[test]
fn markup_in_a_place_or_item_name_is_escaped_in_html_and_kept_as_typed_in_text() {
    let place = PlaceOf { name: HOSTILE.to_owned(), address: "<b>bold</b> street".to_owned(), sender: Vec::new() };
    let mut item = item();
    item.name = "\"Books\" <img src=x onerror=alert(1)>".to_owned();
    let messages = [
        deposit::stored_for_receiver(email(), &item, &place),
        messages::codes(
            email(),
            HOSTILE,
            &[CodeLine { code: &code(), door_no: 7, item_name: &item.name, is_return: false }],
        ),
        messages::pickup_reminder(email(), &Waiting { point_name: HOSTILE, item_name: &item.name, ..waiting(&place) }),
        note(email(), removed(&item.name, HOSTILE, 7, None)),
    ];
    for message in messages {
        let Rendered { text, html, .. } = rendered(&message);
        let html = html.unwrap();
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(text.contains(HOSTILE) && text.contains("<img src=x"), "the text part is not HTML: {text}");
    }
}

/// SMS that do not fit one 160-character GSM-7 part with the sample values
/// above (a real place, address or item name may make others longer). The
/// README's Messages section lists the same.
const LONG_SMS: &[&str] = &["item_stored_receiver", "pickup_codes", "pickup_reminder"];

#[test]
fn sms_fit_one_gsm7_part_except_the_listed_ones() {
    let mut long = Vec::new();
    for (message, _) in every_message(sms) {
        let text = rendered(&message).text;
        let septets = gsm7_len(&text).unwrap_or_else(|| panic!("{}: not GSM-7: {text}", message.kind));
        eprintln!("{septets:>3} {}: {text}", message.kind);
        if septets > 160 && !long.contains(&message.kind) {
            long.push(message.kind);
        }
    }
    assert_eq!(long, LONG_SMS);
}

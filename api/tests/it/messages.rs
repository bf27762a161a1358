//! Messages rendered from templates, as they arrive: SMS at the fake Twilio
//! (which accepts only the right Basic auth and form fields) and email at
//! the fake SMTP server, as multipart/alternative with a text and an HTML
//! part. A place name with markup in it reaches SMS and text as typed and the
//! HTML part escaped.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::billing::Money;
use lockers_core::exchange::collection::messages::{self, CodeLine, Waiting};
use lockers_core::messaging::otp::{Code, Purpose};
use lockers_core::messaging::outbox::{self, Message, Recipient};
use serde_json::{Value, json};

use crate::client::exchange::{id, json_of, site};
use crate::client::pickup::Receiver;
use crate::fakes::smtp::Mail;
use crate::fakes::twilio;
use crate::harness::{Stack, eventually};

const RECEIVER_PHONE: &str = "+919876543210";
const RECEIVER_EMAIL: &str = "asha@example.com";
const HOSTILE: &str = "<script>alert(1)</script> & Sons";
const WAIT: StdDuration = StdDuration::from_secs(15);

/// The one mail to `address` whose subject contains `needle`, waiting for it.
async fn mail_about(stack: &Stack, address: &str, needle: &str) -> Mail {
    let find = || stack.smtp.mails_to(address).into_iter().find(|m| m.header("Subject").unwrap().contains(needle));
    assert!(eventually(WAIT, || async { find().is_some() }).await, "no mail to {address} about {needle:?}");
    find().unwrap()
}

/// The text and HTML parts of `mail`, checking it is multipart/alternative
/// with exactly those two, text first.
fn text_and_html(mail: &Mail) -> (String, String) {
    let content_type = mail.header("Content-Type").unwrap();
    assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
    let parts = mail.parts();
    let types: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    (parts[0].1.clone(), parts[1].1.clone())
}

fn minute(at: &Value) -> String {
    let at: DateTime<Utc> = at.as_str().unwrap().parse().unwrap();
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[tokio::test]
async fn the_receiver_learns_place_address_door_deadline_and_how_by_sms_and_by_text_and_html_email() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M", "M"]).await;
    let renamed = stack.update_point(&admin, &site.point, &json!({ "name": HOSTILE })).await;
    assert_eq!(renamed.status(), 200, "an admin may name a place anything");
    let body = json!({ "locker_id": site.lockers[1], "name": "Books", "receiver_phone": RECEIVER_PHONE,
                       "receiver_email": RECEIVER_EMAIL });
    let item = id(&json_of(stack.deposit(&token, &body).await, 201).await);
    json_of(stack.drop_off(&token, &item).await, 200).await;
    let stored = eventually(WAIT, || async { stack.sent_to(RECEIVER_PHONE) == 1 }).await;
    assert!(stored, "the receiver's SMS");
    let pickup_by = minute(&json_of(stack.item(&token, &item).await, 200).await["pickup_by"]);

    // SMS: the fake answers 401 to a wrong Basic auth, so every request it took had the right one.
    assert_eq!(stack.twilio.requests() as usize, stack.twilio.messages().len(), "every request was accepted");
    let sms = stack.twilio.messages().into_iter().find(|m| m.to == RECEIVER_PHONE).unwrap();
    assert_eq!(sms.from, twilio::FROM);
    for fact in [HOSTILE, "80 Feet Road", "door 2", "Books", &pickup_by, "this phone number"] {
        assert!(sms.body.contains(fact), "`{fact}` missing from the SMS: {}", sms.body);
    }

    let mail = mail_about(&stack, RECEIVER_EMAIL, "A parcel is waiting for you").await;
    let (text, html) = text_and_html(&mail);
    for fact in
        [HOSTILE, "80 Feet Road", "Locker door: 2", "Books", &pickup_by, "ask for a code with this email address"]
    {
        assert!(text.contains(fact), "`{fact}` missing from the text part: {text}");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Sons"), "{html}");
    assert!(!html.contains("<script>"), "no markup from a place name reaches the HTML: {html}");
    for fact in ["80 Feet Road", "<strong>2</strong>", "<strong>Books</strong>", &pickup_by, "this email address"] {
        assert!(html.contains(fact), "`{fact}` missing from the HTML part: {html}");
    }
}

#[tokio::test]
async fn a_code_mail_carries_the_code_in_both_parts_the_outbox_keeps_neither_and_the_sender_reads_the_amount() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot(HOSTILE, 1).await;
    let sender = stack.sender(None).await;
    let locker = spot.lockers[0];
    let receiver = Receiver { phone: None, email: Some(RECEIVER_EMAIL) };
    stack.stored_item_since(&sender, locker, receiver, Duration::minutes(61)).await;

    assert_eq!(stack.pickup_request(locker, RECEIVER_EMAIL).await.status(), 202);
    let mail = mail_about(&stack, RECEIVER_EMAIL, "Your Lockers code").await;
    let code = mail.code().unwrap();
    let (text, html) = text_and_html(&mail);
    assert!(text.contains(&format!("{code} to collect \"Blue parcel\" from door 1")), "{text}");
    assert!(text.contains(HOSTILE) && text.contains("Never share"), "{text}");
    assert!(html.contains(&format!(">{code}</td>")) && html.contains("&lt;script&gt;"), "{html}");
    let blanked = eventually(WAIT, || async {
        let row: (String, String, Option<String>) =
            sqlx::query_as("SELECT status, body, html_body FROM notifications WHERE kind = 'pickup_codes'")
                .fetch_one(&stack.pool)
                .await
                .unwrap();
        row == ("sent".to_owned(), String::new(), None)
    })
    .await;
    assert!(blanked, "a delivered code leaves neither part in the outbox");

    assert_eq!(stack.pickup_collect(locker, &code).await.status(), 200);
    let told = mail_about(&stack, &sender.email, "was collected").await;
    let (text, html) = text_and_html(&told);
    assert!(text.contains("The stay cost INR 100.00: 2 started hours"), "{text}");
    assert!(html.contains("<strong>INR 100.00</strong>"), "{html}");
    let receipt = mail_about(&stack, RECEIVER_EMAIL, "You collected").await;
    let (text, _) = text_and_html(&receipt);
    assert!(text.contains("door 1") && text.contains(HOSTILE), "{text}");
    let kept: Option<String> = sqlx::query_scalar("SELECT html_body FROM notifications WHERE kind = 'item_collected'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert!(kept.unwrap().contains("INR 100.00"), "a notice keeps its HTML for operators");
}

/// Every kind the workers' use cases build outside a request, queued to a
/// phone and to an email address: what reaches Twilio is the rendered SMS
/// to the letter, and what reaches SMTP is the rendered subject, text part
/// and HTML part.
#[tokio::test]
async fn each_kind_arrives_exactly_as_rendered_by_sms_and_as_text_and_html_email() {
    let stack = Stack::spawn(&[]).await;
    let at = Utc::now();
    let code = Code::parse("042917").unwrap();
    let line = [CodeLine { code: &code, door_no: 7, item_name: "Books", is_return: false }];
    let waiting = Waiting {
        item_name: "Books",
        point_name: HOSTILE,
        address: "80 Feet Road",
        door_no: 7,
        pickup_by: at + Duration::hours(72),
    };
    let inr = Money::new(10_000, "INR");
    let build: Vec<Box<dyn Fn(Recipient) -> Message>> = vec![
        Box::new(|to| outbox::one_time_code(to, Purpose::Verify, &code)),
        Box::new(|to| outbox::one_time_code(to, Purpose::Login, &code)),
        Box::new(|to| outbox::one_time_code(to, Purpose::Reset, &code)),
        Box::new(|to| outbox::one_time_code(to, Purpose::Pickup, &code)),
        Box::new(|to| outbox::one_time_code(to, Purpose::Return, &code)),
        Box::new(|to| messages::codes(to, HOSTILE, &line)),
        Box::new(|to| messages::collected(to, "Books", at, &inr, 2)),
        Box::new(|to| messages::receipt(to, "Books", HOSTILE, 7, at)),
        Box::new(|to| messages::returned(to, "Books", at, &inr, 2)),
        Box::new(|to| messages::open_failed(to, "Books", HOSTILE, 7)),
        Box::new(|to| messages::expired(to, "Books", HOSTILE, 7, at)),
        Box::new(|to| messages::abandoned(to, "Books", &inr, 2)),
        Box::new(|to| messages::pickup_reminder(to, &waiting)),
    ];
    let mut expected = Vec::new();
    let mut tx = stack.pool.begin().await.unwrap();
    for (i, build) in build.iter().enumerate() {
        // One recipient per message, so each arrival is matched to its message.
        let phone = Recipient::Sms(Phone::parse(&format!("+9198765432{i:02}")).unwrap());
        let email = Recipient::Email(Email::parse(&format!("user{i}@example.com")).unwrap());
        for message in [build(phone), build(email)] {
            outbox::queue(&mut tx, &message).await.unwrap();
            expected.push((message.to.address().to_owned(), message.kind, message.render().unwrap()));
        }
    }
    tx.commit().await.unwrap();

    let all = eventually(WAIT, || async { stack.twilio.messages().len() + stack.smtp.mails().len() == expected.len() });
    assert!(all.await, "every message arrived");
    for (address, kind, rendered) in expected {
        match rendered.html {
            None => {
                let sms = stack.twilio.messages().into_iter().find(|m| m.to == address).unwrap();
                assert_eq!((sms.from.as_str(), sms.body.as_str()), (twilio::FROM, rendered.text.as_str()), "{kind}");
            }
            Some(html) => {
                let mail = stack.smtp.mails_to(&address).pop().unwrap();
                assert_eq!(mail.header("Subject"), rendered.subject, "{kind}");
                assert_eq!(text_and_html(&mail), (rendered.text, html), "{kind}");
            }
        }
    }
}

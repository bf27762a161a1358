//! Message templates: every product message is rendered by minijinja from
//! files under `core/templates/`, built into the binary. For a message kind
//! `k`, `k.txt` holds the blocks `subject` (email subject), `sms` (the short
//! text) and `text` (the email's text part), and `k.html` the email's HTML
//! part, escaped automatically (every `.html` template autoescapes). A kind
//! sent only by email (`admin_alert`) has no `sms` block.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::messaging::outbox::Channel;

/// Names a file under `core/templates/` and includes it at compile time.
macro_rules! template_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// Every template file. A message kind is a `.txt` and an `.html` of the same
/// name; names starting with `_` are shared parts.
const FILES: &[(&str, &str)] = template_files![
    "_layout.html",
    "_code.txt",
    "_code.html",
    "otp_verify.txt",
    "otp_verify.html",
    "otp_login.txt",
    "otp_login.html",
    "otp_reset.txt",
    "otp_reset.html",
    "otp_pickup.txt",
    "otp_pickup.html",
    "otp_return.txt",
    "otp_return.html",
    "item_stored_receiver.txt",
    "item_stored_receiver.html",
    "item_stored_sender.txt",
    "item_stored_sender.html",
    "dropoff_failed.txt",
    "dropoff_failed.html",
    "reservation_expired.txt",
    "reservation_expired.html",
    "door_left_open.txt",
    "door_left_open.html",
    "pickup_codes.txt",
    "pickup_codes.html",
    "item_collected.txt",
    "item_collected.html",
    "pickup_receipt.txt",
    "pickup_receipt.html",
    "item_returned.txt",
    "item_returned.html",
    "pickup_failed.txt",
    "pickup_failed.html",
    "item_expired.txt",
    "item_expired.html",
    "item_abandoned.txt",
    "item_abandoned.html",
    "pickup_reminder.txt",
    "pickup_reminder.html",
    "item_force_removed.txt",
    "item_force_removed.html",
    "admin_alert.txt",
    "admin_alert.html",
];

/// What a template made of a message, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Email only.
    pub subject: Option<String>,
    /// The SMS, or the email's text part.
    pub text: String,
    /// The email's HTML part.
    pub html: Option<String>,
}

/// A template failed: a missing file or block, or a variable the builder did
/// not pass. A bug, which the tests rendering every message catch.
#[derive(Debug, thiserror::Error)]
#[error("message `{kind}` could not be rendered: {reason}")]
pub struct RenderError {
    pub kind: String,
    pub reason: String,
}

/// The templates, parsed once per process.
static TEMPLATES: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A variable the builder forgot fails the render instead of vanishing.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in FILES {
        env.add_template(name, source).map_err(|e| format!("{name}: {e:#}"))?;
    }
    Ok(env)
});

/// Renders message `kind` for `channel` with `context`.
pub fn render(kind: &str, channel: Channel, context: &Value) -> Result<Rendered, RenderError> {
    let failed = |reason: String| RenderError { kind: kind.to_owned(), reason };
    let env = TEMPLATES.as_ref().map_err(|e| failed(e.clone()))?;
    let text_template = env.get_template(&format!("{kind}.txt")).map_err(|e| failed(format!("{e:#}")))?;
    let mut blocks = text_template.render_captured(context.clone()).map_err(|e| failed(format!("{e:#}")))?;
    let mut block =
        |name: &str| blocks.with_state_mut(|state| state.render_block(name)).map_err(|e| failed(format!("{e:#}")));
    match channel {
        Channel::Sms => Ok(Rendered { subject: None, text: one_line(&block("sms")?), html: None }),
        Channel::Email => {
            let subject = one_line(&block("subject")?);
            let text = paragraphs(&block("text")?);
            let html = env
                .get_template(&format!("{kind}.html"))
                .and_then(|t| t.render(context! { subject => &subject, ..context.clone() }))
                .map_err(|e| failed(format!("{e:#}")))?;
            Ok(Rendered { subject: Some(subject), text, html: Some(html) })
        }
    }
}

/// An SMS or a subject: one line, single spaces (templates wrap freely).
fn one_line(rendered: &str) -> String {
    rendered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An email's text: lines without trailing spaces, at most one blank line in a
/// row (a template's tags leave empty lines), none at either end.
fn paragraphs(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut blank = false;
    for line in rendered.trim().lines().map(str::trim_end) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        if blank && !out.is_empty() {
            out.push('\n');
        }
        blank = false;
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// The characters of the GSM 03.38 default alphabet (one septet each) and its
/// extension table (two septets each): an SMS using only these costs 160
/// characters per part, otherwise it goes as UCS-2 (70).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// The length of `sms` in GSM-7 septets, or `None` if it needs UCS-2.
pub fn gsm7_len(sms: &str) -> Option<usize> {
    sms.chars().try_fold(0, |len, c| {
        if GSM7_BASIC.contains(c) {
            Some(len + 1)
        } else if GSM7_EXTENDED.contains(c) {
            Some(len + 2)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_parses() {
        assert!(TEMPLATES.is_ok(), "{:?}", TEMPLATES.as_ref().err());
    }

    #[test]
    fn text_keeps_single_blank_lines_and_sms_one_line() {
        assert_eq!(paragraphs("\n  Hello,  \n\n\n\nline one\nline two\n\n"), "Hello,\n\nline one\nline two");
        assert_eq!(one_line("\n Lockers:\n  your code\n"), "Lockers: your code");
    }

    #[test]
    fn gsm7_counts_septets_and_refuses_what_needs_ucs2() {
        assert_eq!(gsm7_len("Lockers: 123456"), Some(15));
        assert_eq!(gsm7_len("[€]"), Some(6));
        assert_eq!(gsm7_len("₹50"), None);
    }

    #[test]
    fn a_missing_variable_fails_the_render() {
        let error = render("otp_login", Channel::Sms, &context! {}).unwrap_err();
        assert_eq!(error.kind, "otp_login");
    }
}

//! The console's texts: one catalogue per language, compiled into the binary.
//!
//! A catalogue is the folder `api/i18n/{lang}/`, one JSON object per surface
//! (`common`, `kiosk`, `app`, `admin`); the key `kiosk.door_open` is the
//! entry `door_open` of `kiosk.json`. Templates only ever show text through
//! `t(key, name=value...)`. A key missing in Hindi or Tamil falls back to
//! English; a key missing in English shows the key itself (and a test fails).

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Hi,
    Ta,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Hi, Lang::Ta];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Hi => "hi",
            Lang::Ta => "ta",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| raw.eq_ignore_ascii_case(l.code()))
    }

    /// The language a request asks for: `?lang=` (the switch), then the
    /// `lang` cookie it left, then `Accept-Language`, then English. The second
    /// value is true when the query chose it (the caller remembers it in the cookie).
    pub fn of_request(query: Option<&str>, headers: &HeaderMap) -> (Self, bool) {
        if let Some(lang) = query.and_then(query_lang) {
            return (lang, true);
        }
        if let Some(lang) = cookie(headers, "lang").and_then(|v| Lang::parse(&v)) {
            return (lang, false);
        }
        let accepted = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let lang = accepted
            .split(',')
            .filter_map(|part| part.split(';').next())
            .filter_map(|tag| Lang::parse(tag.trim().split('-').next().unwrap_or_default()))
            .next()
            .unwrap_or_default();
        (lang, false)
    }
}

fn query_lang(query: &str) -> Option<Lang> {
    query.split('&').filter_map(|pair| pair.strip_prefix("lang=")).find_map(Lang::parse)
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The surfaces, each a file of every catalogue.
const SURFACES: [&str; 4] = ["common", "kiosk", "app", "admin"];

macro_rules! catalogue {
    ($lang:literal) => {
        [
            include_str!(concat!("../../i18n/", $lang, "/common.json")),
            include_str!(concat!("../../i18n/", $lang, "/kiosk.json")),
            include_str!(concat!("../../i18n/", $lang, "/app.json")),
            include_str!(concat!("../../i18n/", $lang, "/admin.json")),
        ]
    };
}

type Catalogue = HashMap<String, String>;

fn load(files: [&str; 4]) -> Catalogue {
    let mut out = Catalogue::new();
    for (surface, text) in SURFACES.iter().zip(files) {
        // The files are compiled in and checked by a test; a broken one reads as empty.
        let entries: HashMap<String, String> = serde_json::from_str(text).unwrap_or_else(|error| {
            tracing::error!(%error, surface, "a catalogue file is not a JSON object of strings");
            HashMap::new()
        });
        out.extend(entries.into_iter().map(|(key, value)| (format!("{surface}.{key}"), value)));
    }
    out
}

static CATALOGUES: LazyLock<[Catalogue; 3]> =
    LazyLock::new(|| [load(catalogue!("en")), load(catalogue!("hi")), load(catalogue!("ta"))]);

fn catalogue(lang: Lang) -> &'static Catalogue {
    &CATALOGUES[lang as usize]
}

/// The text of `key` in `lang` (English when missing; the key when missing
/// there too), with each `{name}` replaced by its argument.
pub fn text(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    let template = catalogue(lang).get(key).or_else(|| catalogue(Lang::En).get(key));
    let Some(template) = template else {
        return key.to_owned();
    };
    let mut out = template.clone();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Whether English has `key` (tests of templates use it).
pub fn has(key: &str) -> bool {
    catalogue(Lang::En).contains_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lang: Lang, surface: &str) -> Vec<String> {
        let mut keys: Vec<String> =
            catalogue(lang).keys().filter(|k| k.starts_with(&format!("{surface}."))).cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn every_catalogue_file_is_an_object_of_strings() {
        for files in [catalogue!("en"), catalogue!("hi"), catalogue!("ta")] {
            for (surface, text) in SURFACES.iter().zip(files) {
                let parsed: Result<HashMap<String, String>, _> = serde_json::from_str(text);
                assert!(parsed.is_ok(), "{surface}: {parsed:?}");
            }
        }
    }

    #[test]
    fn the_kiosk_and_common_texts_exist_in_hindi_and_tamil() {
        for surface in ["common", "kiosk"] {
            let english = keys(Lang::En, surface);
            assert!(surface != "common" || !english.is_empty(), "{surface} has no English texts");
            for lang in [Lang::Hi, Lang::Ta] {
                let missing: Vec<&String> = english.iter().filter(|k| !catalogue(lang).contains_key(*k)).collect();
                assert!(missing.is_empty(), "{}: missing {missing:?}", lang.code());
                let extra: Vec<String> =
                    keys(lang, surface).into_iter().filter(|k| !catalogue(Lang::En).contains_key(k)).collect();
                assert!(extra.is_empty(), "{}: keys English lacks {extra:?}", lang.code());
            }
        }
    }

    #[test]
    fn arguments_fill_their_places_and_missing_texts_fall_back() {
        assert_eq!(text(Lang::En, "common.no_such_key", &[]), "common.no_such_key");
        let title = text(Lang::En, "common.error_title", &[("status", "404".into())]);
        assert!(title.contains("404"), "{title}");
        assert_ne!(text(Lang::Hi, "common.sign_in", &[]), text(Lang::En, "common.sign_in", &[]));
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_cookie_then_accept_language() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::of_request(None, &headers), (Lang::En, false));
        headers.insert(ACCEPT_LANGUAGE, "ta-IN,ta;q=0.9,en;q=0.5".parse().unwrap());
        assert_eq!(Lang::of_request(None, &headers), (Lang::Ta, false));
        headers.insert(COOKIE, "a=b; lang=hi".parse().unwrap());
        assert_eq!(Lang::of_request(Some("x=1"), &headers), (Lang::Hi, false));
        assert_eq!(Lang::of_request(Some("x=1&lang=en"), &headers), (Lang::En, true));
        assert_eq!(Lang::of_request(Some("lang=fr"), &headers), (Lang::Hi, false));
    }
}

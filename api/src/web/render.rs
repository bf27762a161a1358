//! Templates, compiled into the binary and rendered with minijinja.
//!
//! Every surface lists its templates (`TEMPLATES` of its module); they are
//! parsed once, at first use. Autoescaping is on for `.html`. The one
//! function templates get is `t(key, name=value...)`, the text of `key` in
//! the page's language (the `lang` variable).

use std::sync::LazyLock;

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, State, Value};

use super::i18n::{self, Lang};

/// The layout, the error page and the sign-in page, shared by the surfaces.
const SHARED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("signin.html", include_str!("../../templates/signin.html")),
];

/// Every template of the console, by name.
pub fn sources() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    [SHARED, super::kiosk::TEMPLATES, super::app::TEMPLATES, super::admin::TEMPLATES].into_iter().flatten()
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in sources() {
        // A template that does not parse fails its page (and the test that
        // parses every template), not the whole console.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "a template does not parse");
        }
    }
    env.add_function("t", text);
    env
});

/// `t(key, name=value...)` in a template.
fn text(state: &State, key: &str, kwargs: Kwargs) -> Result<String, Error> {
    let lang = state.lookup("lang").and_then(|v| v.as_str().and_then(Lang::parse)).unwrap_or_default();
    let mut args = Vec::new();
    for name in kwargs.args() {
        let value: Value = kwargs.get(name)?;
        args.push((name, value.to_string()));
    }
    kwargs.assert_all_used()?;
    Ok(i18n::text(lang, key, &args))
}

/// Renders template `name` with `context`.
pub fn render(name: &str, context: Value) -> Result<String, Error> {
    ENV.get_template(name)?.render(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `source` without template syntax, comments, scripts and styles.
    fn without_template_syntax(source: &str) -> String {
        let mut text = source.to_owned();
        for (open, close) in
            [("{#", "#}"), ("{%", "%}"), ("{{", "}}"), ("<script", "</script>"), ("<style", "</style>")]
        {
            while let Some(start) = text.find(open) {
                let end = text[start..].find(close).map_or(text.len(), |e| start + e + close.len());
                text.replace_range(start..end, " ");
            }
        }
        text
    }

    /// What a reader sees of `source`'s markup: the text between tags.
    fn visible_text(source: &str) -> String {
        let mut text = without_template_syntax(source);
        for (open, close) in [("<!--", "-->"), ("<", ">"), ("&", ";")] {
            while let Some(start) = text.find(open) {
                let end = text[start..].find(close).map_or(text.len(), |e| start + e + close.len());
                text.replace_range(start..end, " ");
            }
        }
        text
    }

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in sources() {
            assert!(env.add_template(name, source).is_ok(), "{name}: {:?}", env.add_template(name, source));
        }
        for (name, _) in sources() {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn templates_hold_no_literal_text_only_catalogue_keys() {
        for (name, source) in sources() {
            let left = visible_text(source);
            let letters: String = left.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)).collect();
            assert!(letters.is_empty(), "{name}: text outside the catalogue: {letters:?}");
            let markup = without_template_syntax(source);
            for attribute in ["aria-label=\"", "placeholder=\"", "title=\"", "alt=\""] {
                for (at, _) in markup.match_indices(attribute) {
                    let value = markup[at + attribute.len()..].split('"').next().unwrap_or_default();
                    assert!(!value.chars().any(char::is_alphabetic), "{name}: literal {attribute}{value}\" (use t())");
                }
            }
        }
    }

    #[test]
    fn every_key_a_template_names_has_an_english_text() {
        for (name, source) in sources() {
            for quote in ['"', '\''] {
                let call = format!("t({quote}");
                for (at, _) in source.match_indices(&call) {
                    let key = source[at + call.len()..].split(quote).next().unwrap_or_default();
                    // A key built at render time ("common.err_" ~ code) ends in '_' or '.'.
                    if key.ends_with('_') || key.ends_with('.') {
                        continue;
                    }
                    assert!(i18n::has(key), "{name}: no English text for {key:?}");
                }
            }
        }
    }

    #[test]
    fn the_check_finds_literal_text() {
        assert_eq!(visible_text("<p>{{ t(\"common.x\") }}</p>").trim(), "");
        assert!(visible_text("<p>Door open</p>").contains("Door"));
        assert!(visible_text("<p>{% if a %}दरवाज़ा{% endif %}</p>").contains("दरवाज़ा"));
    }

    #[test]
    fn t_speaks_the_page_language_and_fills_arguments() {
        let mut env = Environment::new();
        env.add_function("t", text);
        env.add_template("x.html", "{{ t(\"common.error_title\", status=404) }}").unwrap();
        let en = env.get_template("x.html").unwrap().render(minijinja::context! { lang => "en" }).unwrap();
        let hi = env.get_template("x.html").unwrap().render(minijinja::context! { lang => "hi" }).unwrap();
        assert!(en.contains("404") && hi.contains("404"), "{en} / {hi}");
        assert_ne!(en, hi);
    }
}

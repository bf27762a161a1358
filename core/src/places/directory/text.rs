//! Search text: folding (case and accents), words, and how well a typed word
//! matches a word of a place. Pure functions, tested without a database.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower case without accents: "Café Ourém" -> "cafe ourem". Letters that do
/// not decompose (ø, æ, ß, ...) are spelled as people type them without the key.
pub fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.nfd().filter(|c| !is_combining_mark(*c)) {
        match c {
            'ø' | 'Ø' => out.push('o'),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ß' => out.push_str("ss"),
            'đ' | 'Đ' => out.push('d'),
            'ł' | 'Ł' => out.push('l'),
            'ı' => out.push('i'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The folded words of `raw`: runs of letters and digits; everything else
/// (spaces, commas, `%`, `_`) separates words.
pub fn words(raw: &str) -> Vec<String> {
    fold(raw).split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// How a typed word matches one word of a place, best first. A word that
/// appears inside a place's word (the way a search box matches partial
/// text) always ranks above a misspelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// Two edits away (a long word typed with two mistakes).
    Typo2,
    /// One edit away: a letter missing, extra, wrong, or two swapped.
    Typo1,
    /// Inside the word: "mangala" in "koramangala".
    Inside,
    /// The start of the word: "koram" for "koramangala".
    Prefix,
    /// The whole word.
    Exact,
}

impl Match {
    /// Points each kind of match adds to a place's rank.
    pub fn score(self) -> u32 {
        match self {
            Self::Exact => 40,
            Self::Prefix => 30,
            Self::Inside => 20,
            Self::Typo1 => 10,
            Self::Typo2 => 5,
        }
    }
}

/// Typed words longer than this are matched exactly or as a part, never as a
/// misspelling: it bounds the work one word can cost.
pub const MAX_TYPO_WORD: usize = 32;

/// Edits allowed in a word of `len` characters: none up to 3 (too many short
/// words are one letter apart), one up to 7, two beyond.
pub fn typos_allowed(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// How `typed` (folded) matches `word` (folded), if at all.
pub fn match_word(typed: &str, word: &str) -> Option<Match> {
    if word == typed {
        return Some(Match::Exact);
    }
    if word.starts_with(typed) {
        return Some(Match::Prefix);
    }
    if word.contains(typed) {
        return Some(Match::Inside);
    }
    let len = typed.chars().count();
    if len > MAX_TYPO_WORD {
        return None;
    }
    let allowed = typos_allowed(len);
    if allowed == 0 {
        return None;
    }
    match edit_distance_within(typed, word, allowed)? {
        0 | 1 => Some(Match::Typo1),
        _ => Some(Match::Typo2),
    }
}

/// The optimal-string-alignment distance (insertions, deletions,
/// substitutions, swaps of neighbours) between `a` and `b` when it is at most
/// `max`; `None` beyond. Rows stop early once every cell exceeds `max`.
pub fn edit_distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    // Three rows: two before (for swaps) and the current one.
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current: Vec<usize> = vec![0; width];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
            row_min = row_min.min(best);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[b.len()];
    (distance <= max).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_and_accents() {
        assert_eq!(fold("Café Mercado, Rua de OURÉM"), "cafe mercado, rua de ourem");
        assert_eq!(fold("Bengalūru Kōramangala"), "bengaluru koramangala");
        assert_eq!(fold("Søndre Straße"), "sondre strasse");
        assert_eq!(
            words("80 Feet Road, Koramangala (4th Block)"),
            ["80", "feet", "road", "koramangala", "4th", "block"]
        );
        assert_eq!(words("50%_off"), ["50", "off"]);
        assert!(words(" ,.%_ ").is_empty());
    }

    #[test]
    fn misspellings_are_found_within_their_allowance() {
        assert_eq!(edit_distance_within("koramangla", "koramangala", 2), Some(1), "a letter missing");
        assert_eq!(edit_distance_within("kormangala", "koramangala", 2), Some(1), "another letter missing");
        assert_eq!(edit_distance_within("koramagnala", "koramangala", 2), Some(1), "two letters swapped");
        assert_eq!(edit_distance_within("kormangla", "koramangala", 2), Some(2));
        assert_eq!(edit_distance_within("krmngla", "koramangala", 2), None);
        assert_eq!(edit_distance_within("abc", "abc", 0), Some(0));
        assert_eq!(match_word("koramangla", "koramangala"), Some(Match::Typo1));
        assert_eq!(match_word("kormangla", "koramangala"), Some(Match::Typo2));
        assert_eq!(match_word("mumbay", "mumbai"), Some(Match::Typo1));
        assert_eq!(match_word("goa", "gob"), None, "short words must be exact or a part");
        assert_eq!(match_word("panjim", "panaji"), None, "three edits");
    }

    #[test]
    fn a_part_of_a_word_ranks_above_a_misspelling_and_below_the_whole_word() {
        assert_eq!(match_word("koramangala", "koramangala"), Some(Match::Exact));
        assert_eq!(match_word("koram", "koramangala"), Some(Match::Prefix));
        assert_eq!(match_word("mangala", "koramangala"), Some(Match::Inside));
        assert!(Match::Exact > Match::Prefix && Match::Prefix > Match::Inside);
        assert!(Match::Inside > Match::Typo1 && Match::Typo1 > Match::Typo2);
        assert!(Match::Inside.score() > Match::Typo1.score() + Match::Typo2.score());
    }

    #[test]
    fn very_long_words_are_never_matched_as_misspellings() {
        let long = "a".repeat(MAX_TYPO_WORD + 1);
        let near = format!("{}b", "a".repeat(MAX_TYPO_WORD));
        assert_eq!(match_word(&long, &near), None);
    }
}

//! GBNF grammars for the chain's structured steps, and parsers for what they produce.
//!
//! Small local models do not reliably write JSON on request. A grammar makes llama.cpp sample
//! only tokens that keep the output inside the JSON shape, so the steps always parse; string
//! lengths are bounded so a model cannot ramble inside a string until `max_tokens` cuts the JSON.

use serde::{Deserialize, Serialize};

/// Shared rules: a bounded JSON string without escapes that starts with a letter or digit
/// (small models otherwise fill lists with `", "` and stray brackets), and bounded whitespace.
const COMMON: &str = r#"
string ::= "\"" first char{0,59} "\""
first ::= [^"\\\n\r\t ,.;:#\[\]{}()*/\-]
char ::= [^"\\\n\r\t#\[\]{}]
ws ::= [ \n]{0,2}
"#;

/// Token budget for a grammar output of `strings` strings: the worst case is one token per
/// character, so the JSON can never be cut off mid-string.
pub fn max_tokens_for(strings: usize) -> usize {
    strings * 64 + 48
}

/// Grammar for `{"queries": [s1, …, sN]}` with exactly `n` strings.
pub fn expansion_grammar(n: usize) -> String {
    let more = ("\",\" ws string ").repeat(n.saturating_sub(1));
    format!(
        "root ::= \"{{\" ws \"\\\"queries\\\":\" ws \"[\" ws string {more}ws \"]\" ws \"}}\"\n{COMMON}"
    )
}

/// Grammar for `{"name": s, "angle": s}`: a theme's name and a new post title on it.
pub fn theme_grammar() -> String {
    format!(
        "root ::= \"{{\" ws \"\\\"name\\\":\" ws string \",\" ws \"\\\"angle\\\":\" ws string ws \"}}\"\n{COMMON}"
    )
}

/// The parsed theme step.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ThemeNaming {
    /// The theme's name, 2 to 4 words.
    pub name: String,
    /// A post title on the theme that its passages do not cover.
    pub angle: String,
}

/// The parsed expansion step.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Expansion {
    /// The alternative queries.
    pub queries: Vec<String>,
}

/// Words that join a topic's content words ("how to price the whole shop").
pub const CONNECTORS: &[&str] = &[
    "a", "an", "the", "of", "to", "for", "and", "or", "in", "on", "with", "without", "your", "my",
    "our", "not", "is", "are", "be", "how", "why", "what", "when", "from", "at", "by", "vs",
    "more", "less", "no", "you", "we", "it", "i", "can", "do", "this", "that", "as", "if", "but",
    "than", "about",
];

/// Grammar for `{"topic": "…"}` whose phrase is 2–8 words drawn from `words` (the passage's
/// own content words) and [`CONNECTORS`], opening with at most two connectors and then a
/// content word: a small model then names what a passage is about in the passage's terms
/// instead of echoing the question, inventing a subject, or answering "how to".
pub fn grounded_topic_grammar(words: &[String]) -> String {
    // Each word lower-case or capitalised: a model that wants to open with "The" must not be
    // pushed onto the nearest allowed word that starts with a "t".
    let alternatives = |list: &mut dyn Iterator<Item = &str>| -> String {
        list.filter(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '-'))
            .flat_map(|w| {
                let mut chars = w.chars();
                let capital: String = chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default();
                if capital == w {
                    vec![format!("\"{w}\"")]
                } else {
                    vec![format!("\"{w}\""), format!("\"{capital}\"")]
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let content = alternatives(&mut words.iter().map(String::as_str));
    let connector = alternatives(&mut CONNECTORS.iter().copied());
    format!(
        "root ::= \"{{\" ws \"\\\"topic\\\":\" ws \"\\\"\" (connector \" \"){{0,2}} content (\" \" word){{1,6}} \"\\\"\" ws \"}}\"\n\
         word ::= content | connector\ncontent ::= {content}\nconnector ::= {connector}\nws ::= [ \\n]{{0,2}}\n"
    )
}

/// The parsed back-translation step.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Topic {
    /// What the passage is about, as a request.
    pub topic: String,
}

/// Grammar for the local judge's verdict: `{"accuracy": 1-3, "style": 1-3}`.
pub fn judge_grammar() -> String {
    format!(
        "root ::= \"{{\" ws \"\\\"accuracy\\\":\" ws score \",\" ws \"\\\"style\\\":\" ws score ws \"}}\"\nscore ::= [1-3]\n{COMMON}"
    )
}

/// The parsed judge step: scores from 1 (poor) to 3 (good).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Judgement {
    /// Consistency with the facts the draft was given.
    pub accuracy: u8,
    /// Likeness to the user's real writing.
    pub style: u8,
}

/// Grammar for the self-query filters; `platforms` are the library's platform names.
pub fn self_query_grammar(platforms: &[String]) -> String {
    let mut platform = String::from("\"null\"");
    for p in platforms {
        let safe: String = p
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !safe.is_empty() {
            platform.push_str(&format!(" | \"\\\"{safe}\\\"\""));
        }
    }
    format!(
        r#"root ::= "{{" ws "\"platform\":" ws platform "," ws "\"date_from\":" ws date "," ws "\"date_to\":" ws date "," ws "\"topic\":" ws string ws "}}"
platform ::= {platform}
date ::= "null" | "\"" [12] [0-9] [0-9] [0-9] "-" month "-" day "\""
month ::= "0" [1-9] | "1" [0-2]
day ::= "0" [1-9] | [12] [0-9] | "3" [01]
{COMMON}"#
    )
}

/// The parsed self-query step.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct SelfQuery {
    /// A platform the request names.
    pub platform: Option<String>,
    /// Earliest date, `YYYY-MM-DD`.
    pub date_from: Option<String>,
    /// Latest date, `YYYY-MM-DD`.
    pub date_to: Option<String>,
    /// The subject in a few words.
    pub topic: String,
}

/// Grammar for an article plan: a title and exactly `n` section headings.
pub fn outline_grammar(n: usize) -> String {
    let more = ("\",\" ws heading ").repeat(n.saturating_sub(1));
    format!(
        "root ::= \"{{\" ws \"\\\"title\\\":\" ws string \",\" ws \"\\\"sections\\\":\" ws \"[\" ws heading {more}ws \"]\" ws \"}}\"\n{HEADING}{COMMON}"
    )
}

/// A section heading does not start with a digit: a small model numbers its headings ("1. How
/// to price"), and numbered headings lead it to write every section as a numbered list.
const HEADING: &str = r#"heading ::= "\"" hfirst char{0,59} "\""
hfirst ::= [^"\\\n\r\t ,.;:#\[\]{}()*/\-0-9]"#;

/// The parsed article plan.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ArticlePlan {
    /// Article title.
    pub title: String,
    /// Section headings in order.
    pub sections: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammars_name_every_rule_they_use() {
        for g in [
            expansion_grammar(3),
            self_query_grammar(&["linkedin".into(), "x".into()]),
            outline_grammar(4),
        ] {
            for rule in ["root ::=", "string ::=", "first ::=", "char ::=", "ws ::="] {
                assert!(g.contains(rule), "{rule} missing in\n{g}");
            }
        }
        let outline = outline_grammar(3);
        for rule in ["heading ::=", "hfirst ::="] {
            assert!(outline.contains(rule), "{rule} missing in\n{outline}");
        }
        assert!(
            outline.contains("0-9]"),
            "headings may not open with a digit"
        );
        assert_eq!(expansion_grammar(3).matches("string").count(), 4);
    }

    #[test]
    fn outputs_in_the_grammar_shape_parse() {
        let e: Expansion = serde_json::from_str(r#"{"queries": ["a b", "c", "d"]}"#).unwrap();
        assert_eq!(e.queries.len(), 3);
        let s: SelfQuery = serde_json::from_str(
            r#"{"platform": "x", "date_from": null, "date_to": "2024-12-31", "topic": "jigs"}"#,
        )
        .unwrap();
        assert_eq!(s.platform.as_deref(), Some("x"));
    }
}

//! Prompt templates: one Jinja file per chain step, each with a version in its first line
//! (`{#- twin-template: <name> v<N> -#}`), so every trace records exactly which prompts ran.
//!
//! The files in `crates/twin-core/templates/` are compiled in. A user (or a prompt engineer)
//! can override any of them by putting a file of the same name in `<data dir>/templates/`;
//! the trace then shows the override's version and hash.

use super::PromptError;
use serde::Serialize;
use std::path::Path;

/// One template context from `layers`, a later layer's value winning over an earlier one's,
/// key by key. minijinja's `merge_maps` documents the first map as winning, but 2.24 lets the
/// last win; the precedence is spelled out here instead of depending on either.
pub(crate) fn layered(layers: &[&minijinja::Value]) -> minijinja::Value {
    let mut values = std::collections::BTreeMap::new();
    for layer in layers {
        if layer.kind() != minijinja::value::ValueKind::Map {
            continue;
        }
        let Ok(keys) = layer.try_iter() else {
            continue;
        };
        for key in keys {
            if let (Some(name), Ok(value)) = (key.as_str(), layer.get_item(&key)) {
                if !value.is_undefined() {
                    values.insert(name.to_string(), value);
                }
            }
        }
    }
    minijinja::Value::from(values)
}

/// The compiled-in templates, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("system", include_str!("../../templates/system.j2")),
    (
        "json_system",
        include_str!("../../templates/json_system.j2"),
    ),
    ("self_query", include_str!("../../templates/self_query.j2")),
    ("expand", include_str!("../../templates/expand.j2")),
    ("outline", include_str!("../../templates/outline.j2")),
    (
        "article_outline",
        include_str!("../../templates/article_outline.j2"),
    ),
    ("draft", include_str!("../../templates/draft.j2")),
    ("section", include_str!("../../templates/section.j2")),
    (
        "newsletter_part",
        include_str!("../../templates/newsletter_part.j2"),
    ),
    ("critique", include_str!("../../templates/critique.j2")),
    ("revise", include_str!("../../templates/revise.j2")),
    ("instruct", include_str!("../../templates/instruct.j2")),
    ("judge", include_str!("../../templates/judge.j2")),
    ("theme", include_str!("../../templates/theme.j2")),
];

/// The templates whose instructions a draft's writing steps read (and a small model may copy
/// into its text).
const WRITING_TEMPLATES: &[&str] = &[
    "system",
    "outline",
    "draft",
    "section",
    "newsletter_part",
    "critique",
    "revise",
];

/// The instruction text of the built-in writing templates: each line's literal text between
/// the template's tags and placeholders (`{{ topic }}` splits "about: {{ topic }}" from what
/// follows), without comments. What the draft health checks look for as echoed instructions.
pub fn writing_instructions() -> Vec<&'static str> {
    BUILT_IN
        .iter()
        .filter(|(name, _)| WRITING_TEMPLATES.contains(name))
        .flat_map(|(_, source)| literal_text(source))
        .flat_map(str::lines)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The parts of a Jinja `source` outside `{{ … }}`, `{% … %}` and `{# … #}`.
fn literal_text(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find(['{']) {
        let closer = match rest[open + 1..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                // A lone brace is text.
                out.push(&rest[..=open]);
                rest = &rest[open + 1..];
                continue;
            }
        };
        out.push(&rest[..open]);
        rest = match rest[open + 2..].find(closer) {
            Some(end) => &rest[open + 2 + end + 2..],
            None => "",
        };
    }
    out.push(rest);
    out
}

/// Which template ran, for traces.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TemplateUse {
    /// Template name.
    pub name: String,
    /// Version from its header line.
    pub version: String,
    /// `built-in` or the override file's path.
    pub origin: String,
    /// blake3 of the source, first 12 hex digits.
    pub hash: String,
}

/// The loaded templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
    uses: Vec<TemplateUse>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.uses).finish()
    }
}

/// The version in a template's header line, or `unversioned`.
fn version_of(source: &str) -> String {
    source
        .lines()
        .next()
        .and_then(|l| l.split("twin-template:").nth(1))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .map(|v| v.trim_start_matches('v').to_string())
        .unwrap_or_else(|| "unversioned".into())
}

impl Templates {
    /// The templates a data folder drafts and trains with: the built-in ones, each replaced by
    /// the user's `<data_dir>/templates/<name>.j2` where that exists.
    pub fn in_data_dir(data_dir: &Path) -> Result<Self, PromptError> {
        Self::load(Some(&data_dir.join("templates")))
    }

    /// The built-in templates, each replaced by `<override_dir>/<name>.j2` where that exists.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, PromptError> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_keep_trailing_newline(false);
        let mut uses = Vec::new();
        for (name, built_in) in BUILT_IN {
            let file = override_dir.map(|d| d.join(format!("{name}.j2")));
            let (source, origin) = match file.as_ref().filter(|f| f.is_file()) {
                Some(f) => (
                    std::fs::read_to_string(f).map_err(|e| PromptError::Template {
                        name: f.display().to_string(),
                        reason: e.to_string(),
                    })?,
                    f.display().to_string(),
                ),
                None => (built_in.to_string(), "built-in".to_string()),
            };
            uses.push(TemplateUse {
                name: name.to_string(),
                version: version_of(&source),
                origin,
                hash: blake3::hash(source.as_bytes()).to_hex()[..12].to_string(),
            });
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| PromptError::Template {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self { env, uses })
    }

    /// Render template `name` with `context`.
    pub fn render(&self, name: &str, context: minijinja::Value) -> Result<String, PromptError> {
        let err = |e: minijinja::Error| PromptError::Template {
            name: name.to_string(),
            reason: e.to_string(),
        };
        let text = self
            .env
            .get_template(name)
            .map_err(err)?
            .render(context)
            .map_err(err)?;
        Ok(text.trim().to_string())
    }

    /// What template `name` is (version, origin, hash).
    pub fn describe(&self, name: &str) -> Option<&TemplateUse> {
        self.uses.iter().find(|u| u.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_the_literal_text_between_tags() {
        assert_eq!(
            literal_text(
                "{#- c -#}\nWrite about: {{ topic }}\n{% if x %}Only {a} text.{% endif %}"
            ),
            vec!["", "\nWrite about: ", "\n", "Only {", "a} text.", ""]
        );
        let lines = writing_instructions();
        assert!(lines
            .iter()
            .any(|l| l.contains("no numbered list, no heading")));
        assert!(!lines
            .iter()
            .any(|l| l.contains("{{") || l.contains("twin-template")));
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let shared = minijinja::context! { words => 600, topic => "jigs" };
        let section = minijinja::context! { words => 200, heading => "Why" };
        let ctx = layered(&[&shared, &section, &minijinja::Value::UNDEFINED]);
        let env = minijinja::Environment::new();
        let out = env
            .render_str("{{ topic }} {{ heading }} {{ words }}", ctx)
            .unwrap();
        assert_eq!(out, "jigs Why 200");
    }

    #[test]
    fn every_built_in_template_is_versioned_and_renders() {
        let t = Templates::load(None).unwrap();
        for (name, _) in BUILT_IN {
            let u = t.describe(name).unwrap();
            assert_ne!(u.version, "unversioned", "{name}");
            let out = t
                .render(
                    name,
                    minijinja::context! { topic => "pricing", author => "Nell", format_name => "LinkedIn post",
                        words => 150, rules => "", points => 3, sections => vec!["a", "b"], n => 3,
                        platforms => vec!["linkedin"], style_card => "- short sentences",
                        heading => "a", title => "t", draft => "d", critique => "c" },
                )
                .unwrap();
            assert!(
                !out.contains("twin-template"),
                "{name}: header leaked: {out}"
            );
            assert!(!out.is_empty(), "{name}");
        }
    }

    #[test]
    fn an_override_file_replaces_the_built_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("draft.j2"),
            "{#- twin-template: draft v7 -#}\nWrite about {{ topic }}.",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(t.describe("draft").unwrap().version, "7");
        assert_eq!(
            t.render("draft", minijinja::context! { topic => "jigs" })
                .unwrap(),
            "Write about jigs."
        );
        assert_eq!(t.describe("outline").unwrap().origin, "built-in");
    }
}

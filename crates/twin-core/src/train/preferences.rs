//! Preference pairs: for one request, the text the user wrote or chose (`chosen`) and a text the
//! model wrote instead (`rejected`). Two sources, both already in the library:
//!
//! - the dataset's machine negatives: for a training request, the user's real passage against
//!   the base model's own draft for the same prompt;
//! - the user's edits (`draft_edits`): the text they made of a draft against the draft.
//!
//! A preference objective (DPO, ORPO) trains on these; `twin dataset preferences` writes them as
//! JSONL in the usual `{prompt, chosen, rejected}` shape.

use super::dataset::{drafting_messages, Dataset};
use super::TrainError;
use crate::engine::ChatMessage;
use crate::prompt::format::Format;
use crate::prompt::templates::Templates;
use crate::store::{DraftEdit, ExampleKind, Split};
use serde::Serialize;

/// Where a pair comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// The user's passage against the base model's draft for the same training request.
    MachineDraft,
    /// The user's final text against the draft they edited.
    Edit,
}

/// One preference pair.
#[derive(Clone, Debug, Serialize)]
pub struct PreferencePair {
    /// Where it comes from.
    pub source: PairSource,
    /// The prompt both texts answer.
    pub prompt: Vec<ChatMessage>,
    /// The user's text.
    pub chosen: String,
    /// The model's text.
    pub rejected: String,
}

/// The pairs `dataset` implies (its machine drafts against the user's passages for the same
/// prompts) and the user's `edits`, whose prompts are rendered as drafting would send them
/// (with `templates`, naming the author `author`). Edits of platforms no format writes for
/// are left out, as are pairs whose two texts are the same.
pub fn pairs(
    dataset: &Dataset,
    edits: &[DraftEdit],
    templates: &Templates,
    author: &str,
) -> Result<Vec<PreferencePair>, TrainError> {
    let mut out = Vec::new();
    for machine in dataset
        .examples
        .iter()
        .filter(|e| e.split == Split::Negative && e.kind == ExampleKind::Machine)
    {
        let user = dataset.examples.iter().find(|e| {
            e.kind == ExampleKind::User && e.split == Split::Train && e.messages == machine.messages
        });
        if let Some(user) = user.filter(|u| u.reply.trim() != machine.reply.trim()) {
            out.push(PreferencePair {
                source: PairSource::MachineDraft,
                prompt: machine.messages.clone(),
                chosen: user.reply.clone(),
                rejected: machine.reply.clone(),
            });
        }
    }
    for edit in edits {
        let Some(format) = Format::ALL.iter().find(|f| f.platform() == edit.format) else {
            continue;
        };
        if edit.final_text.trim() == edit.draft.trim() {
            continue;
        }
        let words = edit.final_text.split_whitespace().count();
        let prompt = drafting_messages(
            templates,
            author,
            "",
            *format,
            &edit.topic,
            ((words + 5) / 10 * 10).max(10),
        )?;
        out.push(PreferencePair {
            source: PairSource::Edit,
            prompt,
            chosen: edit.final_text.clone(),
            rejected: edit.draft.clone(),
        });
    }
    Ok(out)
}

/// `pairs` as JSONL, one `{"source", "prompt", "chosen", "rejected"}` object per line.
pub fn to_jsonl(pairs: &[PreferencePair]) -> String {
    pairs
        .iter()
        .map(|p| serde_json::to_string(p).unwrap_or_default() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DatasetRecord;
    use crate::train::dataset::Example;

    fn example(split: Split, kind: ExampleKind, prompt: &str, reply: &str) -> Example {
        Example {
            split,
            kind,
            document_path: None,
            messages: vec![ChatMessage::user(prompt)],
            reply: reply.into(),
            request: None,
        }
    }

    #[test]
    fn machine_drafts_pair_with_the_users_passage_and_edits_with_their_draft() {
        let dataset = Dataset {
            record: DatasetRecord {
                id: "d".into(),
                created_at: 0,
                base_model: "0".into(),
                params: serde_json::Value::Null,
                stats: serde_json::Value::Null,
            },
            examples: vec![
                example(
                    Split::Train,
                    ExampleKind::User,
                    "on pricing",
                    "Charge more.",
                ),
                example(Split::Train, ExampleKind::User, "on hiring", "Hire slowly."),
                example(
                    Split::Negative,
                    ExampleKind::Machine,
                    "on pricing",
                    "Pricing is key.",
                ),
                // No passage of the user's answers this prompt: no pair.
                example(
                    Split::Negative,
                    ExampleKind::Machine,
                    "on luck",
                    "Luck matters.",
                ),
            ],
        };
        let edit = |format: &str, draft: &str, final_text: &str| DraftEdit {
            id: 1,
            trace_id: 1,
            created_at: 0,
            topic: "estimates".into(),
            format: format.into(),
            model: "m".into(),
            adapter: None,
            draft: draft.into(),
            final_text: final_text.into(),
            changed: 0.5,
        };
        let edits = [
            edit(
                "linkedin",
                "Estimates are hard.",
                "Estimates are guesses; say so.",
            ),
            edit("fax", "Nothing", "Something"),
            edit("x", "Same text.", "Same text. "),
        ];
        let templates = Templates::load(None).unwrap();
        let got = pairs(&dataset, &edits, &templates, "Nell").unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].source, PairSource::MachineDraft);
        assert_eq!(
            (got[0].chosen.as_str(), got[0].rejected.as_str()),
            ("Charge more.", "Pricing is key.")
        );
        assert_eq!(got[1].source, PairSource::Edit);
        assert_eq!(got[1].chosen, "Estimates are guesses; say so.");
        assert!(
            got[1].prompt.last().unwrap().content.contains("estimates"),
            "{:?}",
            got[1].prompt
        );
        let jsonl = to_jsonl(&got);
        assert_eq!(jsonl.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first["source"], "machine_draft");
        assert_eq!(first["rejected"], "Pricing is key.");
    }
}

//! The training set: instruction → reply pairs whose reply is the user's own text, verbatim.
//!
//! Instruction back-translation: the local model reads a passage the user wrote and names the
//! request it answers ("a LinkedIn post about pricing your first product"); the example is then
//! rendered with the very prompts drafting uses (`system` + `draft` templates), so the adapter
//! learns the voice in the situation it will be asked to write in.
//!
//! Only text the user wrote is kept: quotes, code, boilerplate, headings and near-duplicate
//! passages are dropped, within length bounds. The held-out split is by document, chosen per
//! platform, so no document feeds both training and evaluation. A small replay set of the base
//! model's own answers to generic requests keeps the adapter following ordinary instructions.

use super::TrainError;
use crate::engine::{ChatMessage, ChatModel, GenerateRequest, Sampling};
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::prompt::format::{word_count, Format};
use crate::prompt::grammar::{max_tokens_for, Topic};
use crate::prompt::templates::Templates;
use crate::store::{DatasetRecord, ExampleKind, ExampleRecord, Split, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

mod passages;
mod requests;
use passages::*;
pub use requests::*;

/// How a dataset is built. Part of its version hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetParams {
    /// Share of each platform's documents held out for evaluation.
    pub test_fraction: f64,
    /// Passages shorter than this (words) are dropped.
    pub min_words: usize,
    /// Passages are assembled from paragraphs up to this many words.
    pub max_words: usize,
    /// Replay examples per user training example.
    pub replay_fraction: f64,
    /// Seed of the held-out choice.
    pub seed: u64,
    /// Author's name as the drafting prompts use it.
    pub author: String,
    /// How many training requests also get the base model's own draft (a machine negative:
    /// what "sounds like you" is fitted against, and the rejected side of preference pairs).
    #[serde(default = "default_machine_drafts")]
    pub machine_drafts: usize,
}

fn default_machine_drafts() -> usize {
    MACHINE_DRAFTS
}

impl Default for DatasetParams {
    fn default() -> Self {
        Self {
            test_fraction: 0.15,
            min_words: 25,
            max_words: 260,
            replay_fraction: 0.1,
            seed: 7,
            author: "the author".into(),
            machine_drafts: MACHINE_DRAFTS,
        }
    }
}

/// Generic requests: the first half is answered by the base model for the replay set, the
/// second half is never trained on and checks that an adapter still answers ordinary requests.
pub const GENERIC_PROMPTS: [&str; 20] = [
    "Explain photosynthesis in two sentences.",
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "How do I boil an egg?",
    "Write a haiku about the sea.",
    "What is a prime number?",
    "Summarise the water cycle.",
    "How does a bicycle stay upright?",
    "Suggest a name for a grey cat.",
    "Why is the sky blue?",
    "How do I change a flat tire?",
    "What are the planets of the solar system?",
    "Give me a simple recipe for pancakes.",
    "Explain what a noun is to a child.",
    "What should I pack for a weekend hike?",
    "How do vaccines work?",
    "List three uses for baking soda.",
    "What is the difference between weather and climate?",
    "How can I be more productive in the morning?",
    "Describe how a rainbow forms.",
];

/// The generic prompts no replay example uses (for the "no collapse" check).
pub fn unseen_generic_prompts() -> &'static [&'static str] {
    &GENERIC_PROMPTS[10..]
}

/// One built example before it is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Example {
    /// `train` or `test`.
    pub split: Split,
    /// `user` or `replay`.
    pub kind: ExampleKind,
    /// Source document of a user example.
    pub document_path: Option<String>,
    /// The prompt messages.
    pub messages: Vec<ChatMessage>,
    /// The reply to learn (the user's own text, or the base model's replay answer).
    pub reply: String,
    /// The drafting request the reply answers, kept as data: `None` for replay examples.
    pub request: Option<(Format, String)>,
}

impl Example {
    /// Back from a stored record (the last message is the reply).
    pub fn from_record(record: &ExampleRecord) -> Result<Self, TrainError> {
        let mut messages: Vec<ChatMessage> = serde_json::from_value(record.messages.clone())
            .map_err(|e| TrainError::Data(format!("a stored example does not parse: {e}")))?;
        let reply = messages
            .pop()
            .filter(|m| m.role == "assistant")
            .ok_or_else(|| TrainError::Data("a stored example has no reply".into()))?;
        let request = match (&record.format, &record.topic) {
            (Some(format), Some(topic)) => format.parse().ok().map(|f| (f, topic.clone())),
            (None, None) if record.kind != ExampleKind::Replay => legacy_request(&messages),
            _ => None,
        };
        Ok(Self {
            split: record.split,
            kind: record.kind,
            document_path: record.document_path.clone(),
            messages,
            reply: reply.content,
            request,
        })
    }

    fn to_record(&self, idx: usize) -> ExampleRecord {
        let mut all = self.messages.clone();
        all.push(ChatMessage::assistant(self.reply.clone()));
        ExampleRecord {
            idx: idx as i64,
            split: self.split,
            kind: self.kind,
            document_path: self.document_path.clone(),
            messages: serde_json::to_value(&all).unwrap_or_default(),
            format: self.request.as_ref().map(|(f, _)| f.key().to_string()),
            topic: self.request.as_ref().map(|(_, t)| t.clone()),
        }
    }
}

/// The request of an example stored before schema 8, which kept no request as data: read
/// back from the stock `draft` template's line "Write a <format> about: <topic>". Only for
/// those old datasets; a rebuilt dataset stores its requests.
fn legacy_request(messages: &[ChatMessage]) -> Option<(Format, String)> {
    let prompt = &messages.iter().find(|m| m.role == "user")?.content;
    prompt.lines().find_map(|line| {
        Format::ALL.into_iter().find_map(|f| {
            line.strip_prefix(&format!("Write a {} about: ", f.display_name()))
                .map(|topic| (f, topic.trim().to_string()))
        })
    })
}

/// Why passages were left out, counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FilterCounts {
    /// Paragraphs that quote someone else.
    pub quotes: usize,
    /// Paragraphs of code.
    pub code: usize,
    /// Boilerplate lines (subscribe, share, copyright…).
    pub boilerplate: usize,
    /// Passages (nearly) identical to one already kept.
    pub near_duplicates: usize,
    /// Passages under the minimum length.
    pub too_short: usize,
    /// Back-translations the model failed, replaced by the document title.
    pub title_fallbacks: usize,
    /// Instructions the model wrote that passed the checks.
    pub model_instructions: usize,
}

/// What a built dataset holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct DatasetStats {
    /// Documents used.
    pub documents: usize,
    /// Documents held out.
    pub test_documents: usize,
    /// User examples for training.
    pub train_user: usize,
    /// Replay examples for training.
    pub train_replay: usize,
    /// The base model's drafts for training requests, kept as negatives for "sounds like
    /// you" (never trained on).
    #[serde(default)]
    pub machine_negatives: usize,
    /// User examples held out.
    pub test_user: usize,
    /// Words of the user's text in training examples.
    pub train_words: usize,
    /// Examples per platform.
    pub platforms: BTreeMap<String, usize>,
    /// What the filters removed.
    pub filtered: FilterCounts,
}

/// A dataset version with its examples.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The stored record (id = version hash).
    pub record: DatasetRecord,
    /// The examples, in order.
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Fail unless the dataset was built with `base`: its requests were back-translated and its
    /// replay answers written by that model, so training or evaluating another on it is wrong.
    pub fn check_base(&self, base: &crate::store::ModelRecord) -> Result<(), TrainError> {
        if self.record.base_model == base.sha256 {
            return Ok(());
        }
        Err(TrainError::Data(format!(
            "dataset {} was built for another model (sha256 {}); build one for {} with `twin dataset build`, or choose that model",
            self.record.id, self.record.base_model, base.name
        )))
    }

    /// Load dataset `id` (a unique prefix is enough), or the newest with `None`.
    pub fn load(store: &Store, id: Option<&str>) -> Result<Self, TrainError> {
        let all = store.datasets()?;
        let record = match id {
            None => all.into_iter().next().ok_or(TrainError::NoDataset)?,
            Some(id) => {
                let mut matches: Vec<DatasetRecord> =
                    all.into_iter().filter(|d| d.id.starts_with(id)).collect();
                match matches.len() {
                    1 => matches.remove(0),
                    0 => return Err(TrainError::Data(format!("no dataset {id:?}"))),
                    _ => return Err(TrainError::Data(format!("{id:?} matches several datasets"))),
                }
            }
        };
        let examples = store
            .dataset_examples(&record.id)?
            .iter()
            .map(Example::from_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { record, examples })
    }

    /// The examples of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Example> {
        self.examples.iter().filter(move |e| e.split == split)
    }

    /// One JSON object per line, `{"split", "kind", "document", "messages"}`, the chat format
    /// most fine-tuning tools read.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.examples {
            let mut messages = e.messages.clone();
            messages.push(ChatMessage::assistant(e.reply.clone()));
            let line = serde_json::json!({
                "split": e.split,
                "kind": e.kind,
                "document": e.document_path,
                "messages": messages,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

/// The prompt messages drafting would send for `topic` in `format`, without retrieved context
/// (training examples leave the style card out too: the adapter is meant to carry the voice
/// itself, and the card's ~200 tokens per example would triple the cost of every step).
pub fn drafting_messages(
    templates: &Templates,
    author: &str,
    style_card: &str,
    format: Format,
    topic: &str,
    words: usize,
) -> Result<Vec<ChatMessage>, TrainError> {
    let common = minijinja::context! {
        author => author,
        format_name => format.display_name(),
        topic => topic,
        words => words,
        rules => format.rules(),
    };
    let system = templates.render(
        "system",
        minijinja::value::merge_maps([
            minijinja::context! { style_card => style_card, exemplars => Vec::<String>::new(), context => Vec::<String>::new() },
            common.clone(),
        ]),
    )?;
    let user = templates.render("draft", common)?;
    Ok(vec![ChatMessage::system(system), ChatMessage::user(user)])
}

/// Build a dataset from the library with `model` (the base chat model; `model_sha256` names it)
/// and store it. Cancelling keeps the back-translations done so far (cached), so a rebuild
/// continues where this one stopped.
pub fn build(
    store: &mut Store,
    model: &ChatModel,
    model_sha256: &str,
    templates: &Templates,
    params: &DatasetParams,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Dataset, TrainError> {
    let _span = tracing::info_span!("dataset").entered();
    let mut stats = DatasetStats::default();
    let mut docs = Vec::new();
    for id in store.original_document_ids()? {
        if let Some(doc) = store.document(id)? {
            docs.push(doc);
        }
    }
    // The dataset built before, if any: its split is kept, and, for the same base model, its
    // replay answers and machine drafts are reused (greedy or seeded, they would come out the
    // same), so a rebuild after new writing only asks the model about the new passages.
    let previous = match Dataset::load(store, None) {
        Ok(d) => Some(d),
        Err(TrainError::NoDataset) => None,
        Err(e) => return Err(e),
    };
    let previous_split: HashMap<String, Split> = previous
        .iter()
        .flat_map(|d| d.examples.iter())
        .filter(|e| e.kind == ExampleKind::User)
        .filter_map(|e| Some((e.document_path.clone()?, e.split)))
        .collect();
    let reusable = previous
        .as_ref()
        .filter(|d| d.record.base_model == model_sha256)
        .map(|d| d.examples.as_slice())
        .unwrap_or_default();
    let held_out = held_out_paths(
        &docs
            .iter()
            .map(|d| {
                (
                    d.path.to_string_lossy().into_owned(),
                    d.platform.clone(),
                    d.body.as_str(),
                )
            })
            .collect::<Vec<_>>(),
        params,
        &previous_split,
    );
    // Passages first, so progress has a total.
    let mut seen_hashes: Vec<u64> = Vec::new();
    let mut seen_exact: HashSet<String> = HashSet::new();
    let mut work = Vec::new();
    for doc in &docs {
        let path = doc.path.to_string_lossy().into_owned();
        let format = format_of(doc.platform.as_deref());
        for Passage {
            heading,
            text: passage,
        } in passages(&doc.body, params, &mut stats.filtered)
        {
            let normalized: String = passage
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let near = crate::library::dedup::simhash(&passage).is_some_and(|h| {
                seen_hashes
                    .iter()
                    .any(|s| (s ^ h).count_ones() <= crate::library::dedup::NEAR_DUPLICATE_BITS)
            });
            if near || !seen_exact.insert(normalized) {
                stats.filtered.near_duplicates += 1;
                continue;
            }
            if let Some(h) = crate::library::dedup::simhash(&passage) {
                seen_hashes.push(h);
            }
            // Where the model cannot name the request, the section heading (or the title)
            // is the request the user answered.
            let words = topic_words(&params.author, &doc.title, heading.as_deref(), &passage);
            let fallback = title_request(&doc.title, heading.as_deref());
            work.push((path.clone(), fallback, format, passage, words));
        }
    }
    stats.documents = docs.len();
    stats.test_documents = held_out.len();

    let instruct_version = templates
        .describe("instruct")
        .map(|u| format!("instruct v{} {} {BACK_TRANSLATION}", u.version, u.hash))
        .unwrap_or_else(|| "instruct".into());
    let mut examples = Vec::new();
    let total = work.len() as u64 + GENERIC_PROMPTS.len() as u64 / 2;
    for (i, (path, fallback, format, passage, words)) in work.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(TrainError::Cancelled);
        }
        let hash = blake3::hash(passage.as_bytes()).to_hex().to_string();
        let topic = match store.cached_instruction(&hash, model_sha256, &instruct_version)? {
            Some(t) => t,
            None => {
                let topic =
                    back_translate(model, templates, *format, passage, words).unwrap_or_default();
                store.cache_instruction(&hash, model_sha256, &instruct_version, &topic)?;
                topic
            }
        };
        let topic = match usable_topic(&topic, passage) {
            Some(t) => {
                stats.filtered.model_instructions += 1;
                t
            }
            None => {
                stats.filtered.title_fallbacks += 1;
                fallback.clone()
            }
        };
        let words = word_count(passage);
        let messages = drafting_messages(
            templates,
            &params.author,
            "",
            *format,
            &topic,
            ((words + 5) / 10 * 10).max(10),
        )?;
        let split = if held_out.contains(path) {
            Split::Test
        } else {
            Split::Train
        };
        if split == Split::Train {
            stats.train_user += 1;
            stats.train_words += words;
        } else {
            stats.test_user += 1;
        }
        *stats
            .platforms
            .entry(format.platform().to_string())
            .or_default() += 1;
        examples.push(Example {
            split,
            kind: ExampleKind::User,
            document_path: Some(path.clone()),
            messages,
            reply: passage.clone(),
            request: Some((*format, topic.clone())),
        });
        progress.report(ProgressEvent {
            stage: Stage::Dataset,
            done: i as u64 + 1,
            total,
            item: Some(path.clone()),
        });
    }

    // Replay: the base model's own greedy answers to generic requests.
    let replay = ((stats.train_user as f64 * params.replay_fraction).round() as usize)
        .clamp(2, GENERIC_PROMPTS.len() / 2);
    for (i, prompt) in GENERIC_PROMPTS.iter().take(replay).enumerate() {
        if cancel.is_cancelled() {
            return Err(TrainError::Cancelled);
        }
        let messages = vec![ChatMessage::user(*prompt)];
        let earlier = reusable
            .iter()
            .find(|e| e.kind == ExampleKind::Replay && e.messages == messages);
        let answer = match earlier {
            Some(e) => e.reply.clone(),
            None => {
                model
                    .generate(
                        &GenerateRequest {
                            messages: messages.clone(),
                            max_tokens: 160,
                            sampling: Sampling::greedy(),
                            ..Default::default()
                        },
                        cancel,
                        &mut |_| {},
                    )?
                    .text
            }
        };
        if answer.trim().is_empty() {
            continue;
        }
        stats.train_replay += 1;
        examples.push(Example {
            split: Split::Train,
            kind: ExampleKind::Replay,
            document_path: None,
            messages,
            reply: answer.trim().to_string(),
            request: None,
        });
        progress.report(ProgressEvent {
            stage: Stage::Dataset,
            done: work.len() as u64 + i as u64 + 1,
            total,
            item: Some((*prompt).to_string()),
        });
    }
    // Machine negatives: the base model's own drafts for some of the training requests. They
    // are never trained on; "sounds like you" is fitted against them so that it tells the
    // user from a model writing on the user's topics, not only from other people.
    let picks: Vec<usize> = examples
        .iter()
        .enumerate()
        .filter(|(_, e)| e.split == Split::Train && e.kind == ExampleKind::User)
        .map(|(i, _)| i)
        .collect();
    let wanted = params.machine_drafts.min(picks.len());
    let stride = (picks.len() / wanted.max(1)).max(1);
    for (n, &i) in picks.iter().step_by(stride).take(wanted).enumerate() {
        if cancel.is_cancelled() {
            return Err(TrainError::Cancelled);
        }
        let messages = examples[i].messages.clone();
        let request = examples[i].request.clone();
        if let Some(e) = reusable
            .iter()
            .find(|e| e.kind == ExampleKind::Machine && e.messages == messages)
        {
            stats.machine_negatives += 1;
            examples.push(e.clone());
            continue;
        }
        let answer = model.generate(
            &GenerateRequest {
                messages: messages.clone(),
                max_tokens: 200,
                sampling: Sampling {
                    seed: params.seed as u32 + n as u32,
                    ..Sampling::drafting()
                },
                ..Default::default()
            },
            cancel,
            &mut |_| {},
        )?;
        let text = answer.text.trim();
        if word_count(text) < 20 {
            continue;
        }
        stats.machine_negatives += 1;
        examples.push(Example {
            split: Split::Negative,
            kind: ExampleKind::Machine,
            document_path: None,
            messages,
            reply: text.to_string(),
            request,
        });
    }
    if stats.train_user == 0 {
        return Err(TrainError::Data(
            "the library has no passages of your own writing to train on; import some first".into(),
        ));
    }

    let params_json = serde_json::to_value(params).unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(model_sha256.as_bytes());
    hasher.update(params_json.to_string().as_bytes());
    for e in &examples {
        hasher.update(serde_json::to_string(e).unwrap_or_default().as_bytes());
    }
    let id = hasher.finalize().to_hex()[..16].to_string();
    let record = DatasetRecord {
        id,
        created_at: crate::store::now_secs(),
        base_model: model_sha256.to_string(),
        params: params_json,
        stats: serde_json::to_value(&stats).unwrap_or_default(),
    };
    let records: Vec<ExampleRecord> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| e.to_record(i))
        .collect();
    store.put_dataset(&record, &records)?;
    Ok(Dataset { record, examples })
}

/// The base model's drafts for training requests kept by default: enough negatives for "sounds
/// like you"; preference training asks for more (`PREFERENCE_MACHINE_DRAFTS`).
pub const MACHINE_DRAFTS: usize = 8;

/// Machine drafts a dataset built for preference training asks for: one per training request
/// up to this many, so the preference term sees many pairs, not the same few again and again.
pub const PREFERENCE_MACHINE_DRAFTS: usize = 64;

#[cfg(test)]
mod tests;

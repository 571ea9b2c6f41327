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
use crate::store::{DatasetRecord, ExampleRecord, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// `train` or `test`.
    pub split: String,
    /// `user` or `replay`.
    pub kind: String,
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
            (None, None) if record.kind != "replay" => legacy_request(&messages),
            _ => None,
        };
        Ok(Self {
            split: record.split.clone(),
            kind: record.kind.clone(),
            document_path: record.document_path.clone(),
            messages,
            reply: reply.content,
            request,
        })
    }

    /// The drafting request the example answers: `None` for replay examples.
    pub fn request(&self) -> Option<(Format, String)> {
        self.request.clone()
    }

    fn to_record(&self, idx: usize) -> ExampleRecord {
        let mut all = self.messages.clone();
        all.push(ChatMessage::assistant(self.reply.clone()));
        ExampleRecord {
            idx: idx as i64,
            split: self.split.clone(),
            kind: self.kind.clone(),
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    pub fn split(&self, split: &str) -> impl Iterator<Item = &Example> {
        let split = split.to_string();
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

/// The platform a document's examples are written as.
fn format_of(platform: Option<&str>) -> Format {
    match platform.unwrap_or("") {
        "linkedin" => Format::Linkedin,
        "x" | "twitter" => Format::Thread,
        "newsletter" | "substack" => Format::Newsletter,
        _ => Format::Article,
    }
}

const BOILERPLATE: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "share this",
    "click here",
    "all rights reserved",
    "follow me",
    "sign up",
    "cookie",
    "copyright",
    "©",
];

enum Kept {
    Yes,
    Quote,
    Code,
    Boilerplate,
    Heading,
}

/// Whether a paragraph is the user's own prose.
fn classify(paragraph: &str) -> Kept {
    let p = paragraph.trim();
    if p.starts_with('#') {
        return Kept::Heading;
    }
    let lines: Vec<&str> = p.lines().collect();
    if lines.iter().all(|l| l.trim_start().starts_with('>')) {
        return Kept::Quote;
    }
    let quoted = |open: char, close: char| p.starts_with(open) && p.ends_with(close);
    if quoted('"', '"') || quoted('“', '”') || quoted('«', '»') {
        return Kept::Quote;
    }
    if p.starts_with("```")
        || p.starts_with("~~~")
        || lines
            .iter()
            .all(|l| l.starts_with("    ") || l.starts_with('\t'))
    {
        return Kept::Code;
    }
    let symbols = p
        .chars()
        .filter(|c| matches!(c, '{' | '}' | ';' | '=' | '<' | '>' | '(' | ')' | '[' | ']'))
        .count();
    if symbols * 12 > p.chars().count().max(1) {
        return Kept::Code;
    }
    let lower = p.to_lowercase();
    if word_count(p) < 25 && BOILERPLATE.iter().any(|b| lower.contains(b)) {
        return Kept::Boilerplate;
    }
    Kept::Yes
}

/// A passage of the user's prose and the section heading it sits under.
#[derive(Clone, Debug, PartialEq)]
struct Passage {
    heading: Option<String>,
    text: String,
}

/// Split a document body into passages of whole paragraphs of at most `max_words` words.
fn passages(body: &str, params: &DatasetParams, filtered: &mut FilterCounts) -> Vec<Passage> {
    let mut out: Vec<Passage> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut words = 0;
    let mut heading: Option<String> = None;
    let flush = |current: &mut Vec<String>,
                 words: &mut usize,
                 out: &mut Vec<Passage>,
                 heading: &Option<String>| {
        if !current.is_empty() {
            out.push(Passage {
                heading: heading.clone(),
                text: current.join("\n\n"),
            });
        }
        current.clear();
        *words = 0;
    };
    // Paragraphs are blank-line separated; a fenced code block may contain blank lines, so
    // fences are tracked explicitly.
    let mut paragraphs: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut buf = String::new();
    for line in body.lines() {
        let fence = line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
        if fence {
            in_fence = !in_fence;
        }
        if line.trim().is_empty() && !in_fence {
            if !buf.trim().is_empty() {
                paragraphs.push(std::mem::take(&mut buf));
            }
            buf.clear();
            continue;
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(line);
    }
    if !buf.trim().is_empty() {
        paragraphs.push(buf);
    }
    for p in paragraphs {
        match classify(&p) {
            Kept::Yes => {}
            Kept::Heading => {
                // A new section starts a new passage once the current one is long enough.
                if words >= params.min_words {
                    flush(&mut current, &mut words, &mut out, &heading);
                }
                if current.is_empty() {
                    heading = Some(p.trim_start_matches('#').trim().to_string());
                }
                continue;
            }
            Kept::Quote => {
                filtered.quotes += 1;
                continue;
            }
            Kept::Code => {
                filtered.code += 1;
                continue;
            }
            Kept::Boilerplate => {
                filtered.boilerplate += 1;
                continue;
            }
        }
        let n = word_count(&p);
        if words > 0 && words + n > params.max_words {
            flush(&mut current, &mut words, &mut out, &heading);
        }
        let p = if n > params.max_words {
            crate::prompt::format::cap_words(&p, params.max_words)
        } else {
            p.trim().to_string()
        };
        words += word_count(&p);
        current.push(p);
    }
    flush(&mut current, &mut words, &mut out, &heading);
    // A short tail joins the passage before it rather than being lost.
    if out.len() > 1
        && out
            .last()
            .is_some_and(|p| word_count(&p.text) < params.min_words)
    {
        if let Some(tail) = out.pop() {
            if let Some(prev) = out.last_mut() {
                prev.text.push_str("\n\n");
                prev.text.push_str(&tail.text);
            }
        }
    }
    let before = out.len();
    out.retain(|p| word_count(&p.text) >= params.min_words);
    filtered.too_short += before - out.len();
    out
}

/// A document as the held-out split sees it: path, platform, and its text.
type SplitDocument<'a> = (String, Option<String>, &'a str);

/// Which paths are held out: the first `round(n × fraction)` documents of each platform in an
/// order seeded by their *text*, not their path, so the same writing gets the same split
/// wherever the library lives (a path-keyed split changed with the checkout's folder).
fn held_out_paths(docs: &[SplitDocument<'_>], params: &DatasetParams) -> HashSet<String> {
    let mut by_platform: BTreeMap<String, Vec<([u8; 32], &String)>> = BTreeMap::new();
    for (path, platform, text) in docs {
        let mut h = blake3::Hasher::new();
        h.update(&params.seed.to_le_bytes());
        h.update(text.as_bytes());
        by_platform
            .entry(platform.clone().unwrap_or_default())
            .or_default()
            .push((*h.finalize().as_bytes(), path));
    }
    let mut out = HashSet::new();
    for paths in by_platform.values_mut() {
        paths.sort();
        let paths: Vec<&String> = paths.iter().map(|(_, p)| *p).collect();
        let n = (paths.len() as f64 * params.test_fraction).round() as usize;
        // Never hold out a platform's only document.
        let n = n.min(paths.len().saturating_sub(1));
        out.extend(paths.iter().take(n).map(|p| p.to_string()));
    }
    out
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
            "test"
        } else {
            "train"
        };
        if split == "train" {
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
            split: split.into(),
            kind: "user".into(),
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
        let answer = model.generate(
            &GenerateRequest {
                messages: messages.clone(),
                max_tokens: 160,
                sampling: Sampling::greedy(),
                ..Default::default()
            },
            cancel,
            &mut |_| {},
        )?;
        if answer.text.trim().is_empty() {
            continue;
        }
        stats.train_replay += 1;
        examples.push(Example {
            split: "train".into(),
            kind: "replay".into(),
            document_path: None,
            messages,
            reply: answer.text.trim().to_string(),
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
        .filter(|(_, e)| e.split == "train" && e.kind == "user")
        .map(|(i, _)| i)
        .collect();
    let wanted = MACHINE_NEGATIVES.min(picks.len());
    let stride = (picks.len() / wanted.max(1)).max(1);
    for (n, &i) in picks.iter().step_by(stride).take(wanted).enumerate() {
        if cancel.is_cancelled() {
            return Err(TrainError::Cancelled);
        }
        let messages = examples[i].messages.clone();
        let request = examples[i].request.clone();
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
            split: MACHINE_SPLIT.into(),
            kind: "machine".into(),
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

/// The base model's drafts for training requests kept as "sounds like you" negatives.
const MACHINE_NEGATIVES: usize = 8;

/// The split of machine negatives: neither trained on nor held out.
pub const MACHINE_SPLIT: &str = "negative";

/// Words that show the model echoed the question instead of answering it.
const ECHO_WORDS: &[&str] = &[
    "json",
    "this text",
    "request",
    "writer",
    "subject",
    "topic",
    "blog article",
    "linkedin post",
    "newsletter issue",
    "x thread",
    "?",
];

/// The model's topic cleaned up, if it is a real answer: not an echo of the prompt, at least two
/// words, and grounded in the passage (it shares a content word with it).
fn usable_topic(topic: &str, passage: &str) -> Option<String> {
    let mut t = topic.trim();
    for prefix in [
        "The main subject of this text is ",
        "The main subject of the text is ",
        "The main subject is ",
        "This text is about ",
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest;
        }
    }
    let t = t.trim().trim_end_matches([',', '.', ';', ':']).trim();
    // "The Hardest Commission Ever" → "the hardest commission ever": it follows "Write a post
    // about:"; names the passage always capitalises ("Japanese", "Friday") keep their capital.
    let t = &sentence_case(t, passage);
    let lower = t.to_lowercase();
    let content: Vec<&str> = lower
        .split_whitespace()
        .filter(|w| !crate::prompt::grammar::CONNECTORS.contains(w))
        .collect();
    // "trick trick", "nell is a nell": a repeated content word is a stuck model, not a topic.
    let repeated = content
        .iter()
        .enumerate()
        .any(|(i, w)| content[..i].contains(w));
    if content.len() < 2 || repeated || ECHO_WORDS.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let passage_lower = passage.to_lowercase();
    // A phrase, not a bag of the passage's words: two of its words stand side by side in the
    // passage ("the rule of three", not "the ever of the lot").
    let passage_words: Vec<&str> = passage_lower
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let topic_words: Vec<&str> = lower.split_whitespace().collect();
    let phrase = topic_words.windows(2).any(|pair| {
        pair.iter()
            .any(|w| !crate::prompt::grammar::CONNECTORS.contains(w))
            && passage_words.windows(2).any(|p| p == pair)
    });
    if !phrase {
        return None;
    }
    let grounded = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .any(|w| passage_lower.contains(w));
    grounded.then(|| t.to_string())
}

/// The request a passage gets when the model cannot name one: its document's title, with the
/// section heading when the title does not already say it.
fn title_request(title: &str, heading: Option<&str>) -> String {
    match heading {
        Some(h) if !title.contains(h) => format!("{title}: {h}"),
        _ => title.to_string(),
    }
}

/// Whether `topic` is [`title_request`]'s fallback for a document titled `title`, not a request
/// the model named: such topics are not used as evaluation topics.
pub fn is_title_request(topic: &str, title: &str) -> bool {
    topic == title || topic.starts_with(&format!("{title}: "))
}

/// The back-translation method, part of the instruction cache's key with the template: a change
/// to how requests are made (the grammar, the word list) must not reuse old answers.
const BACK_TRANSLATION: &str = "grounded-4";

/// Most words a back-translation may choose from.
const TOPIC_WORDS: usize = 64;

/// The content words a request for `passage` may use: the title's and heading's first (they
/// say what the piece is about), then the passage's, lower-cased, in order, without function
/// words.
fn topic_words(author: &str, title: &str, heading: Option<&str>, passage: &str) -> Vec<String> {
    // The author's own name is who writes, not what the piece is about.
    let mut out: Vec<String> = Vec::new();
    let names: Vec<String> = author.split_whitespace().map(str::to_lowercase).collect();
    let text = format!("{title} {} {passage}", heading.unwrap_or(""));
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        let w = w.trim_matches('-').to_lowercase();
        if w.chars().count() < 3
            || w.chars().all(|c| c.is_ascii_digit())
            || crate::prompt::words::FUNCTION_WORDS.contains(&w.as_str())
            || crate::prompt::grammar::CONNECTORS.contains(&w.as_str())
            || out.contains(&w)
            || names.contains(&w)
        {
            continue;
        }
        out.push(w);
        if out.len() == TOPIC_WORDS {
            break;
        }
    }
    out
}

/// `text` in lower case except the words that `passage` only ever capitalises (names).
fn sentence_case(text: &str, passage: &str) -> String {
    let lower_in_passage: HashSet<&str> = passage
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| w.chars().next().is_some_and(char::is_lowercase))
        .collect();
    text.split_whitespace()
        .map(|w| {
            let lower = w.to_lowercase();
            let is_name = w.chars().next().is_some_and(char::is_uppercase)
                && !lower_in_passage.contains(lower.as_str())
                && !crate::prompt::grammar::CONNECTORS.contains(&lower.as_str())
                && passage.contains(w);
            if is_name {
                w.to_string()
            } else {
                lower
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tries at naming a passage's request: greedy first, then sampled with new seeds.
const BACK_TRANSLATION_TRIES: u32 = 3;

/// Ask the model which request `passage` answers, in the passage's own words (a grammar
/// limits the phrase to [`topic_words`] and connectors), keeping the first answer
/// [`usable_topic`] accepts; `None` when no try gives one.
fn back_translate(
    model: &ChatModel,
    templates: &Templates,
    format: Format,
    passage: &str,
    words: &[String],
) -> Option<String> {
    (0..BACK_TRANSLATION_TRIES).find_map(|attempt| {
        let sampling = if attempt == 0 {
            Sampling::greedy()
        } else {
            Sampling {
                temperature: 0.8,
                seed: 0x7717 + attempt,
                ..Sampling::default()
            }
        };
        let topic: Topic = crate::prompt::structured::step_sampled(
            model,
            templates,
            ("instruct", "instruct"),
            minijinja::context! {
                format_name => format.display_name(),
                passage => crate::prompt::format::cap_words(passage, 220),
            },
            crate::prompt::grammar::grounded_topic_grammar(words),
            max_tokens_for(1),
            sampling,
        )
        .ok()?;
        usable_topic(topic.topic.trim().trim_end_matches('.'), passage)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(prompt: &str, format: Option<&str>, topic: Option<&str>) -> ExampleRecord {
        ExampleRecord {
            idx: 0,
            split: "test".into(),
            kind: "user".into(),
            document_path: Some("a.md".into()),
            messages: serde_json::to_value([
                ChatMessage::user(prompt),
                ChatMessage::assistant("My own words."),
            ])
            .unwrap(),
            format: format.map(str::to_string),
            topic: topic.map(str::to_string),
        }
    }

    #[test]
    fn an_example_keeps_its_request_as_data_whatever_the_prompt_says() {
        // A customised `draft` template renders no "Write a … about:" line: the stored request
        // still comes back, and round-trips through the record.
        let record = stored(
            "Compose something on hand planes.",
            Some("thread"),
            Some("hand planes"),
        );
        let example = Example::from_record(&record).unwrap();
        assert_eq!(
            example.request(),
            Some((Format::Thread, "hand planes".into()))
        );
        assert_eq!(example.to_record(0), record);
        // A dataset stored before the request was kept as data falls back to the stock line.
        let old = stored(
            "Write a LinkedIn post about: sharpening\nAbout 120 words.",
            None,
            None,
        );
        assert_eq!(
            Example::from_record(&old).unwrap().request(),
            Some((Format::Linkedin, "sharpening".into()))
        );
    }

    #[test]
    fn passages_keep_own_prose_and_drop_quotes_code_and_boilerplate() {
        let body = "# Title\n\nFirst paragraph of my own words, long enough to count as a real passage of text here.\n\n> Someone else said this clever thing.\n\n```\nfn main() {\n\n    println!(\"hi\");\n}\n```\n\n\"A whole quoted paragraph from a famous person.\"\n\nSubscribe to my newsletter!\n\nSecond paragraph, also mine, which adds a few more words so the passage is comfortably long.";
        let params = DatasetParams {
            min_words: 10,
            ..Default::default()
        };
        let mut filtered = FilterCounts::default();
        let out = passages(body, &params, &mut filtered);
        assert_eq!(out.len(), 1, "{out:?}");
        let text = &out[0].text;
        assert_eq!(out[0].heading.as_deref(), Some("Title"));
        assert!(text.starts_with("First paragraph"));
        assert!(text.contains("Second paragraph"));
        assert!(
            !text.contains("clever") && !text.contains("println") && !text.contains("Subscribe")
        );
        assert_eq!(
            (filtered.quotes, filtered.code, filtered.boilerplate),
            (2, 1, 1)
        );
    }

    #[test]
    fn long_documents_split_at_paragraphs_within_the_word_limit() {
        let para = "word ".repeat(80);
        let body = [para.as_str(); 5].join("\n\n");
        let params = DatasetParams {
            max_words: 200,
            ..Default::default()
        };
        let out = passages(&body, &params, &mut FilterCounts::default());
        let counts: Vec<usize> = out.iter().map(|p| word_count(&p.text)).collect();
        assert!(counts.iter().all(|&n| n <= 200), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 400);
    }

    #[test]
    fn requests_are_phrases_from_the_passage_not_stuck_or_scrambled_words() {
        let passage = "The rule of three: a cabinetmaker inspects a piece three times. \
                       Trick after trick, the Japanese joinery book says the same.";
        assert_eq!(
            usable_topic("The Rule of Three", passage).as_deref(),
            Some("the rule of three")
        );
        // Names the passage always capitalises keep their capital.
        assert_eq!(
            usable_topic("a book on Japanese joinery", passage).as_deref(),
            Some("a book on Japanese joinery")
        );
        assert_eq!(usable_topic("trick trick", passage), None, "stuck");
        assert_eq!(
            usable_topic("the piece of the trick", passage),
            None,
            "no phrase of the passage"
        );
        assert_eq!(usable_topic("how to", passage), None, "no content");
    }

    #[test]
    fn request_words_come_from_the_piece_without_the_authors_name() {
        let words = topic_words(
            "Nell Hart",
            "Pricing the shop",
            Some("Nell's rule"),
            "Nell priced the whole shop.",
        );
        assert_eq!(words, ["pricing", "shop", "rule", "priced", "whole"]);
        assert!(is_title_request(
            "Pricing the shop: Nell's rule",
            "Pricing the shop"
        ));
        assert!(!is_title_request("the whole shop", "Pricing the shop"));
        assert_eq!(
            title_request("Pricing the shop", Some("Rule")),
            "Pricing the shop: Rule"
        );
    }

    #[test]
    fn echoed_or_ungrounded_topics_are_refused() {
        let passage = "Pricing a small product is mostly about courage and arithmetic.";
        assert_eq!(
            usable_topic(
                "The main subject of this text is pricing a small product.",
                passage
            ),
            Some("pricing a small product".into())
        );
        assert_eq!(usable_topic("The topic of the JSON that", passage), None);
        assert_eq!(
            usable_topic("What is the main subject of this text?", passage),
            None
        );
        assert_eq!(usable_topic("The 2019-2023 World Cup", passage), None);
        assert_eq!(usable_topic("Pricing", passage), None);
    }

    #[test]
    fn held_out_split_is_by_document_and_per_platform() {
        let texts: Vec<String> = (0..21).map(|i| format!("Post number {i}.")).collect();
        let docs_under = |root: &str| -> Vec<SplitDocument<'_>> {
            (0..20)
                .map(|i| {
                    (
                        format!("{root}/{i}.md"),
                        Some(if i < 10 { "a" } else { "b" }.to_string()),
                        texts[i].as_str(),
                    )
                })
                .chain([(
                    format!("{root}/only.md"),
                    Some("c".to_string()),
                    texts[20].as_str(),
                )])
                .collect()
        };
        let params = DatasetParams::default();
        let held = held_out_paths(&docs_under("/d"), &params);
        assert_eq!(held.len(), 4, "{held:?}");
        assert!(!held.contains("/d/only.md"));
        assert_eq!(
            held,
            held_out_paths(&docs_under("/d"), &params),
            "the split is deterministic"
        );
        let moved: HashSet<String> = held_out_paths(&docs_under("/elsewhere/d"), &params)
            .into_iter()
            .map(|p| p.replacen("/elsewhere", "", 1))
            .collect();
        assert_eq!(held, moved, "moving the library keeps the split");
    }
}

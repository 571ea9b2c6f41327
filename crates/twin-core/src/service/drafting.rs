//! Drafting through the service: the request completed with the user's settings and adapter
//! choice, the draft prepared while the topic is typed, and the draft's "sounds like you".

use super::{lock, ModelChoice, Twin};
use crate::draft::{self, Chain, Draft, DraftError, DraftEvent, DraftRequest, Format};
use crate::error::TwinError;
use crate::library::Library;
use crate::progress::CancelToken;
use serde::Serialize;

/// How many of the newest drafts say which formats the user writes.
const RECENT_DRAFTS: usize = 50;

/// What a shell asks to draft.
#[derive(Clone, Debug)]
pub struct DraftSpec {
    /// The request; its `author` and `adapter_scale` are filled in by the service.
    pub request: DraftRequest,
    /// Adapter strength over the one chosen for the channel.
    pub strength: Option<f32>,
    /// How the prompts name the author, over the setting.
    pub author: Option<String>,
    /// The model and adapter.
    pub model: ModelChoice,
}

impl DraftSpec {
    /// A draft of `topic` in `format` with every default.
    pub fn new(topic: impl Into<String>, format: Format) -> Self {
        Self {
            request: DraftRequest::new(topic, format),
            strength: None,
            author: None,
            model: ModelChoice::default(),
        }
    }
}

/// What a draft runs on, told before it starts.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct DraftSetup {
    /// The chat model's name.
    pub model: String,
    /// Its chat template.
    pub chat_template: String,
    /// The voice adapter's label, if one is loaded.
    pub adapter: Option<String>,
    /// The adapter's strength (0: the base model).
    pub strength: f32,
    /// The writing steps.
    pub chain: Chain,
}

/// A finished draft and how much it sounds like the user.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct DraftOutcome {
    /// The draft.
    #[serde(flatten)]
    pub draft: Draft,
    /// The probability that the text is the user's (`None`: nothing to fit the classifier on).
    pub sounds_like_you: Option<f64>,
}

/// How a preparation ended.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Preparation {
    /// Whether a prepared draft is waiting for "Write" (false: cancelled by a newer topic).
    pub ready: bool,
    /// Sources chosen.
    pub sources: usize,
    /// Time spent preparing, when it was done now.
    pub ms: Option<f64>,
}

/// A past draft as a history list shows it: its trace without the detail.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct PastDraft {
    /// The trace's id.
    pub id: i64,
    /// Unix time.
    pub created_at: i64,
    /// How the run ended.
    pub status: crate::store::RunStatus,
    /// The topic.
    pub topic: String,
    /// The platform written for.
    pub format: String,
    /// The chat model.
    pub model: String,
    /// The adapter and its strength, if one was used.
    pub adapter: Option<String>,
    /// The text.
    pub output: String,
}

impl Twin {
    /// The newest `limit` drafts (1 to 200), newest first.
    pub fn draft_history(&self, limit: usize) -> Result<Vec<PastDraft>, TwinError> {
        self.with_library(|lib| {
            let traces = lib.store().traces(limit.clamp(1, 200))?;
            Ok(traces
                .into_iter()
                .map(|t| PastDraft {
                    id: t.id,
                    created_at: t.created_at,
                    status: t.status,
                    topic: t.topic,
                    format: t.format,
                    model: t.model,
                    adapter: t.adapter,
                    output: t.output,
                })
                .collect())
        })
    }

    /// The user's final text for the draft of trace `trace_id` (copied, exported or marked
    /// final): stored with the draft when it differs from it, for learning from edits; `None`
    /// when the user kept the draft as written. A later final for the same draft replaces it.
    pub fn record_final(
        &self,
        trace_id: crate::store::TraceId,
        final_text: &str,
    ) -> Result<Option<crate::store::DraftEdit>, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            let trace = store.trace(trace_id)?.ok_or_else(|| {
                TwinError::new(
                    crate::error::ErrorKind::NotFound,
                    format!("no draft {trace_id}; see `twin traces`"),
                )
            })?;
            if trace.status != crate::store::RunStatus::Done {
                return Err(TwinError::bad_input(format!(
                    "draft {trace_id} did not finish ({}); only a finished draft can be edited",
                    trace.status
                )));
            }
            let changed = draft::edits::share_changed(&trace.output, final_text);
            if changed == 0.0 {
                return Ok(None);
            }
            let mut edit = crate::store::DraftEdit {
                id: 0,
                trace_id,
                created_at: crate::store::now_secs(),
                topic: trace.topic,
                format: trace.format,
                model: trace.model,
                adapter: trace.adapter,
                draft: trace.output,
                final_text: final_text.trim().to_string(),
                changed,
            };
            edit.id = store.put_draft_edit(&edit)?;
            Ok(Some(edit))
        })
    }

    /// The drafts the user edited, newest first (at most `limit`, 1 to 500).
    pub fn draft_edits(&self, limit: usize) -> Result<Vec<crate::store::DraftEdit>, TwinError> {
        self.with_library(|lib| Ok(lib.store().draft_edits(limit.clamp(1, 500))?))
    }

    /// The loaded model and the complete request for `spec`.
    fn draft_setup(
        &self,
        lib: &Library,
        spec: &DraftSpec,
    ) -> Result<(super::DraftingModel, DraftRequest, DraftSetup), TwinError> {
        let settings = self.settings_in(lib)?;
        let loaded = self.chat_model(lib, &spec.model, spec.request.format.platform())?;
        let mut request = spec.request.clone();
        request.author = spec.author.clone().unwrap_or(settings.author);
        request.adapter_scale = match &loaded.adapter {
            Some(a) => spec.strength.unwrap_or(a.scale),
            None => 0.0,
        };
        let info = loaded.model.info();
        let setup = DraftSetup {
            model: loaded.record.name.clone(),
            chat_template: info.chat_template.clone(),
            adapter: loaded.adapter.as_ref().map(|a| a.label.clone()),
            strength: request.adapter_scale,
            chain: request.chain_for(info.parameters),
        };
        Ok((loaded, request, setup))
    }

    /// Do a draft's retrieval and evaluate its prompt while the topic is being typed, so that
    /// the draft starts at the first token. A newer preparation cancels this one; the result is
    /// kept until the next draft, which uses it only if it was made for that request on the
    /// library as it is then.
    pub fn prepare_draft(&self, spec: &DraftSpec) -> Result<Preparation, TwinError> {
        let _active = self.user_activity();
        self.cancel(super::JobKind::Prepare);
        let mine = (spec.request.topic.clone(), spec.request.format);
        *lock(&self.preparing) = Some(mine.clone());
        let not_ready = Preparation {
            ready: false,
            sources: 0,
            ms: None,
        };
        let result = self.run_job(super::JobKind::Prepare, |cancel| {
            self.with_library_as_is(|lib| {
                if cancel.is_cancelled() {
                    return Ok(not_ready.clone());
                }
                let (loaded, request, _) = self.draft_setup(lib, spec)?;
                let mut slot = lock(&self.prepared);
                if let Some(p) = slot.as_ref() {
                    if p.matches(lib, &request)? {
                        return Ok(Preparation {
                            ready: true,
                            sources: p.citations().len(),
                            ms: None,
                        });
                    }
                }
                *slot = None;
                drop(slot);
                match draft::prepare(lib, &loaded.model, &request, cancel) {
                    Ok(p) => {
                        let ready = Preparation {
                            ready: true,
                            sources: p.citations().len(),
                            ms: Some(p.ahead_ms()),
                        };
                        *lock(&self.prepared) = Some(p);
                        Ok(ready)
                    }
                    Err(DraftError::Cancelled) => Ok(not_ready.clone()),
                    Err(e) => Err(e.into()),
                }
            })
        });
        let mut preparing = lock(&self.preparing);
        // A newer preparation may have taken the slot meanwhile.
        if preparing.as_ref() == Some(&mine) {
            *preparing = None;
        }
        result
    }

    /// Evaluate the prompt of a `format` draft as far as every draft of it shares it (the
    /// instructions, the style card, the exemplars) with the active model and adapter, and
    /// keep it on disk: the first draft of that format in a later process then reads only its
    /// sources and request (on 2 cores, 1.4 s to the first token instead of 2.7 s). For after
    /// training, off the user's wait. `author`: how the prompts will name the author (default:
    /// the author of the newest draft, else of the newest training set, else the setting).
    /// Returns the ms it took.
    pub fn keep_prompt_head(
        &self,
        format: Format,
        author: Option<String>,
    ) -> Result<f64, TwinError> {
        let started = std::time::Instant::now();
        let author = match author {
            Some(a) => Some(a),
            None => self.with_library_as_is(|lib| latest_author(lib))?,
        };
        // Any topic will do: only the head before its sources is what later drafts share. The
        // format's name names a platform, which would start a self-query step: not needed.
        let mut spec = DraftSpec {
            author,
            ..DraftSpec::new(format.display_name(), format)
        };
        spec.request.self_query = false;
        self.prepare_draft(&spec)?;
        *lock(&self.prepared) = None;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }

    /// The formats whose prompt heads are worth keeping ahead: those among the user's last
    /// 50 drafts, most drafted first; before any draft, LinkedIn posts (the default format).
    pub fn formats_to_prepare(&self) -> Result<Vec<Format>, TwinError> {
        let drafted = self.with_library_as_is(|lib| {
            Ok::<_, TwinError>(lib.store().drafted_formats(RECENT_DRAFTS)?)
        })?;
        let mut formats: Vec<Format> = Vec::new();
        for format in drafted.iter().filter_map(|f| f.parse().ok()) {
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        if formats.is_empty() {
            formats.push(Format::Linkedin);
        }
        Ok(formats)
    }

    /// [`Twin::keep_prompt_head`] for each of [`Twin::formats_to_prepare`]: what the
    /// active model and adapter will start every draft of those formats from. Returns the
    /// formats kept and the ms it took; the first failure stops it.
    pub fn keep_prompt_heads(&self) -> Result<(Vec<Format>, f64), TwinError> {
        let started = std::time::Instant::now();
        let formats = self.formats_to_prepare()?;
        for &format in &formats {
            self.keep_prompt_head(format, None)?;
        }
        Ok((formats, started.elapsed().as_secs_f64() * 1e3))
    }

    /// Draft in the user's voice: `on_setup` hears what the draft runs on, `on_event` its
    /// steps and streamed text. Starts from the prepared draft when there is one for this
    /// request; a preparation of another request in flight is cancelled, one of this request
    /// is waited for.
    pub fn draft(
        &self,
        spec: &DraftSpec,
        cancel: &CancelToken,
        on_setup: impl FnOnce(&DraftSetup),
        on_event: &mut dyn FnMut(DraftEvent),
    ) -> Result<DraftOutcome, TwinError> {
        let _active = self.user_activity();
        let request_key = (spec.request.topic.clone(), spec.request.format);
        if lock(&self.preparing).as_ref() != Some(&request_key) {
            self.cancel(super::JobKind::Prepare);
        }
        self.with_library_as_is(|lib| {
            let (loaded, request, setup) = self.draft_setup(lib, spec)?;
            on_setup(&setup);
            let prepared = lock(&self.prepared).take();
            let draft =
                draft::draft_with(lib, &loaded.model, &request, prepared, cancel, on_event)?;
            let sounds_like_you = self.sounds_like_you(lib, &draft.text)?;
            Ok(DraftOutcome {
                draft,
                sounds_like_you,
            })
        })
    }
}

/// The author the user drafted as last, else the one the newest training set was built for:
/// who the next draft's prompt will most likely name.
fn latest_author(lib: &Library) -> Result<Option<String>, TwinError> {
    let store = lib.store();
    let named = |v: &serde_json::Value| v.as_str().filter(|a| !a.is_empty()).map(str::to_string);
    if let Some(author) = store
        .traces(10)?
        .iter()
        .filter(|t| t.kind == "draft")
        .find_map(|t| named(&t.detail["request"]["author"]))
    {
        return Ok(Some(author));
    }
    Ok(store
        .datasets()?
        .into_iter()
        .next()
        .and_then(|d| named(&d.params["author"])))
}

impl Twin {
    /// Brainstorm from the library: the user's recurring themes (named by the active chat
    /// model) and ideas from them, each citing its theme's passages (see [`draft::ideas`]).
    pub fn ideas(
        &self,
        max_themes: usize,
        cancel: &CancelToken,
    ) -> Result<draft::ideas::Ideas, TwinError> {
        let _active = self.user_activity();
        self.with_library(|lib| {
            let author = self.settings_in(lib)?.author;
            let loaded = self.chat_model(
                lib,
                &ModelChoice::default(),
                crate::train::adapters::DEFAULT_CHANNEL,
            )?;
            Ok(draft::ideas::brainstorm(
                lib,
                &loaded.model,
                &author,
                max_themes,
                cancel,
            )?)
        })
    }
}

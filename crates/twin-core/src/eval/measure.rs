//! Taking the measurements of a run: perplexity per configuration, drafts on held-out topics
//! with their style and "sounds like you" scores, retrieval recall, and the judge. Every
//! measurement is stored as an `eval_items` row the moment it is taken, so a cancelled or
//! crashed run resumes where it stopped; [`super::Summary`] turns the rows into the report.

use super::*;

/// Bookkeeping of a run in progress: what is measured, cancellation, events.
pub(super) struct Measure<'a> {
    pub(super) run: EvalRunId,
    pub(super) done: HashSet<(EvalItemKind, String, String)>,
    pub(super) cancel: &'a CancelToken,
    pub(super) progress: &'a dyn Progress,
}

impl Measure<'_> {
    fn has(&self, kind: EvalItemKind, config: &str, key: &str) -> bool {
        self.done
            .contains(&(kind, config.to_string(), key.to_string()))
    }

    /// Measurements of `kind` stored so far (progress is derived from these).
    fn count(&self, kind: EvalItemKind) -> usize {
        self.done.iter().filter(|(k, _, _)| *k == kind).count()
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.cancel.is_cancelled() {
            Err(EvalError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn put(&mut self, library: &Library, item: EvalItem) -> Result<(), EvalError> {
        library.store().put_eval_item(self.run, &item)?;
        self.done.insert((item.kind, item.config, item.key));
        Ok(())
    }

    fn progress(&self, step: &str, done: usize, total: usize) {
        self.progress.report(ProgressEvent {
            stage: Stage::Evaluate,
            done: done as u64,
            total: total as u64,
            item: Some(step.to_string()),
        });
    }
}

fn load_model(
    base: &ModelRecord,
    model_config: &ChatModelConfig,
    adapter: Option<&String>,
) -> Result<ChatModel, EvalError> {
    let config = ChatModelConfig {
        adapter: adapter.map(PathBuf::from),
        ..model_config.clone()
    };
    Ok(models::load_chat_model(base, &config)?)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn measure_all(
    library: &mut Library,
    base: &ModelRecord,
    model_config: &ChatModelConfig,
    params: &EvalParams,
    dataset: &Dataset,
    heldout: &[(usize, &crate::train::dataset::Example)],
    configs: &[Config],
    judge: Option<&ModelRecord>,
    m: &mut Measure,
) -> Result<(), EvalError> {
    // The held-out writing itself: the style reference, stored so reports need nothing else.
    for (idx, e) in heldout {
        let key = idx.to_string();
        if !m.has(EvalItemKind::Heldout, "user", &key) {
            let (format, topic) = e.request.clone().unzip();
            m.put(
                library,
                EvalItem {
                    kind: EvalItemKind::Heldout,
                    config: "user".into(),
                    key,
                    value: style::words(&e.reply).len() as f64,
                    detail: serde_json::json!({
                        "text": e.reply,
                        "document": e.document_path,
                        "topic": topic,
                        "format": format.map(|f| f.platform()),
                    }),
                },
            )?;
        }
    }

    // Retrieval needs no chat model.
    measure_retrieval(library, heldout, params, m)?;

    // One model load per configuration: held-out perplexity, drafts on held-out topics (with
    // the held-out documents out of reach), and, when the judge is the base model itself, the
    // judging (structured steps run at adapter scale 0, i.e. on the base weights).
    let excluded: Vec<String> = heldout
        .iter()
        .filter_map(|(_, e)| e.document_path.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Eval topics come only from real requests: a passage whose request fell back to its
    // document's title is scored for perplexity but never drafted.
    let store = library.store();
    let titles: HashMap<String, String> = excluded
        .iter()
        .filter_map(|path| {
            let id = store.document_id_by_path(Path::new(path)).ok()??;
            Some((path.clone(), store.document(id).ok()??.info.title))
        })
        .collect();
    let topics = draft_topics(heldout, &titles, params.drafts);
    let templates = Templates::in_data_dir(library.data_dir())?;
    let judge_is_base = judge.is_some_and(|j| j.sha256 == base.sha256);
    let nll_total = heldout.len() * configs.len();
    let draft_total = topics.len() * configs.iter().filter(|c| c.drafts).count();
    for c in configs {
        let nll_todo: Vec<_> = heldout
            .iter()
            .filter(|(idx, _)| !m.has(EvalItemKind::Nll, &c.config, &idx.to_string()))
            .collect();
        let draft_todo: Vec<_> = topics
            .iter()
            .filter(|t| c.drafts && !m.has(EvalItemKind::Draft, &c.config, &t.0.to_string()))
            .collect();
        let judge_todo = judge_is_base
            && topics
                .iter()
                .any(|t| c.drafts && !m.has(EvalItemKind::Judge, &c.config, &t.0.to_string()));
        if nll_todo.is_empty() && draft_todo.is_empty() && !judge_todo {
            continue;
        }
        let model = load_model(base, model_config, c.adapter_path.as_ref())?;
        let scale = if c.adapter_path.is_some() { 1.0 } else { 0.0 };
        for (idx, e) in nll_todo {
            m.check()?;
            let enc = model.encode_example(&e.messages, &e.reply)?;
            let scored = model
                .score(&enc.tokens, enc.prompt_len, scale, m.cancel)
                .map_err(|e| match e {
                    crate::engine::EngineError::Cancelled => EvalError::Cancelled,
                    e => e.into(),
                })?;
            let sum: f64 = scored.nll.iter().map(|&v| f64::from(v)).sum();
            m.put(
                library,
                EvalItem {
                    kind: EvalItemKind::Nll,
                    config: c.config.clone(),
                    key: idx.to_string(),
                    value: sum,
                    detail: serde_json::json!({ "tokens": scored.nll.len() }),
                },
            )?;
            m.progress("perplexity", m.count(EvalItemKind::Nll), nll_total);
        }
        for (idx, format, topic) in draft_todo {
            m.check()?;
            let defaults = DraftRequest::new(topic.clone(), *format);
            let request = DraftRequest {
                draft_only: true,
                expansions: Some(0),
                self_query: false,
                // The sampling drafts get (DRY included), with the run's seed.
                sampling: Sampling {
                    seed: params.seed,
                    ..defaults.sampling.clone()
                },
                adapter_scale: scale,
                author: params.author.clone(),
                exclude_documents: excluded.clone(),
                ..defaults
            };
            let d = draft::draft(library, &model, &request, m.cancel, &mut |_| {}).map_err(
                |e| match e {
                    DraftError::Cancelled => EvalError::Cancelled,
                    e => EvalError::Draft(e),
                },
            )?;
            m.put(
                library,
                EvalItem {
                    kind: EvalItemKind::Draft,
                    config: c.config.clone(),
                    key: idx.to_string(),
                    value: d.words as f64,
                    detail: serde_json::json!({
                        "topic": topic,
                        "format": format.platform(),
                        "text": d.text,
                        "chunks": d.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
                        "trace": d.trace_id,
                        "publishable": d.health.publishable,
                        "failed": d.health.failures().map(|c| c.name.clone()).collect::<Vec<_>>(),
                    }),
                },
            )?;
            m.progress("drafts", m.count(EvalItemKind::Draft), draft_total);
        }
        if let Some(judge) = judge.filter(|_| judge_is_base) {
            let drafts = stored_drafts(library, m.run, Some(&c.config))?;
            let job = Judging {
                model: &model,
                name: &judge.name,
                templates: &templates,
                total: draft_total,
            };
            judge_drafts(library, &job, &drafts, heldout, params, m)?;
        }
    }

    // "Sounds like you": fitted on the training split against other people's writing;
    // every fifth reference passage is kept back to show how it treats writers it never saw.
    let drafts = stored_drafts(library, m.run, None)?;
    let references = authorship::reference_passages();
    let (others_train, others_test): (Vec<_>, Vec<_>) =
        references.iter().enumerate().partition(|(i, _)| i % 5 != 4);
    let user_train: Vec<&str> = dataset
        .split(Split::Train)
        .filter(|e| e.kind == ExampleKind::User)
        .map(|e| e.reply.as_str())
        .collect();
    // Other people's writing, and the base model's own drafts on training requests: machine
    // text on the user's topics is what a twin's drafts must be told apart from.
    let others_train: Vec<&str> = others_train
        .iter()
        .map(|(_, t)| t.as_str())
        .chain(machine_negatives(dataset))
        .collect();
    if let Some(classifier) = AuthorshipModel::fit(&user_train, &others_train) {
        let mut scored: Vec<(String, String, String)> = Vec::new();
        for d in &drafts {
            scored.push((d.config.clone(), d.key.clone(), text_of(d)));
        }
        for (idx, e) in heldout {
            scored.push(("heldout".into(), idx.to_string(), e.reply.clone()));
        }
        for (i, t) in &others_test {
            scored.push(("others".into(), i.to_string(), t.to_string()));
        }
        for (config, key, text) in scored {
            if !m.has(EvalItemKind::Authorship, &config, &key) {
                m.put(
                    library,
                    EvalItem {
                        kind: EvalItemKind::Authorship,
                        config,
                        key,
                        value: classifier.probability(&text),
                        detail: serde_json::to_value(&classifier.fit).unwrap_or_default(),
                    },
                )?;
            }
        }
    }

    // The local judge, when it is another model: loaded once for every draft.
    if let Some(judge) = judge.filter(|_| !judge_is_base) {
        if drafts
            .iter()
            .any(|d| !m.has(EvalItemKind::Judge, &d.config, &d.key))
        {
            let model = models::load_chat_model(judge, model_config)?;
            let job = Judging {
                model: &model,
                name: &judge.name,
                templates: &templates,
                total: drafts.len(),
            };
            judge_drafts(library, &job, &drafts, heldout, params, m)?;
        }
    }
    Ok(())
}

/// Recall of the queries written from held-out passages: each must find its own document.
fn measure_retrieval(
    library: &mut Library,
    heldout: &[(usize, &crate::train::dataset::Example)],
    params: &EvalParams,
    m: &mut Measure,
) -> Result<(), EvalError> {
    let queries: Vec<(usize, String, String)> = heldout
        .iter()
        .filter_map(|(idx, e)| {
            let (_, topic) = e.request.clone()?;
            Some((*idx, topic, e.document_path.clone()?))
        })
        .take(params.queries)
        .collect();
    let modes = [
        ("hybrid", SearchMode::Hybrid),
        ("bm25", SearchMode::Bm25),
        ("vector", SearchMode::Vector),
    ];
    let total = queries.len() * modes.len();
    for (name, mode) in modes {
        for (idx, topic, document) in &queries {
            if m.has(EvalItemKind::Retrieval, name, &idx.to_string()) {
                continue;
            }
            m.check()?;
            let mut query = SearchQuery::new(topic.clone(), RETRIEVAL_DEPTH);
            query.mode = mode;
            let results = library.search(&query)?;
            let mut documents: Vec<String> = Vec::new();
            for r in &results {
                let p = r.hit.path.display().to_string();
                if !documents.contains(&p) {
                    documents.push(p);
                }
            }
            let rank = documents
                .iter()
                .position(|d| d == document)
                .map_or(0, |r| r + 1);
            let title = library
                .store()
                .chunk_hits(&results.iter().map(|r| r.hit.chunk_id).collect::<Vec<_>>())?
                .into_iter()
                .find(|h| h.path.display().to_string() == *document)
                .map(|h| h.title);
            m.put(
                library,
                EvalItem {
                    kind: EvalItemKind::Retrieval,
                    config: name.into(),
                    key: idx.to_string(),
                    value: rank as f64,
                    detail: serde_json::json!({
                        "query": topic,
                        "document": document,
                        // Back-translation falls back to the title when the model fails; such
                        // queries are easy for BM25, so the report counts them apart.
                        "from_title": title.is_some_and(|t| topic.to_lowercase().contains(&t.to_lowercase())),
                        "top": documents.iter().take(3).collect::<Vec<_>>(),
                    }),
                },
            )?;
            m.progress("retrieval", m.count(EvalItemKind::Retrieval), total);
        }
    }
    Ok(())
}

/// The stored drafts of the run (of one configuration, or all).
fn stored_drafts(
    library: &Library,
    run: EvalRunId,
    config: Option<&str>,
) -> Result<Vec<EvalItem>, EvalError> {
    Ok(library
        .store()
        .eval_items(run)?
        .into_iter()
        .filter(|i| i.kind == EvalItemKind::Draft && config.is_none_or(|c| i.config == c))
        .collect())
}

/// The judge model and what its progress counts against.
struct Judging<'a> {
    model: &'a ChatModel,
    name: &'a str,
    templates: &'a Templates,
    total: usize,
}

/// Judge the `drafts` not judged yet: accuracy against each draft's context, style against
/// the held-out passage its topic came from.
fn judge_drafts(
    library: &Library,
    job: &Judging,
    drafts: &[EvalItem],
    heldout: &[(usize, &crate::train::dataset::Example)],
    params: &EvalParams,
    m: &mut Measure,
) -> Result<(), EvalError> {
    let version = job
        .templates
        .describe("judge")
        .map(|t| t.version.clone())
        .unwrap_or_default();
    for d in drafts {
        if m.has(EvalItemKind::Judge, &d.config, &d.key) {
            continue;
        }
        m.check()?;
        let chunk_ids: Vec<i64> = d.detail["chunks"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        let context: Vec<String> = library
            .store()
            .chunk_hits(&chunk_ids)?
            .into_iter()
            .map(|h| excerpt(&h.text, 80))
            .collect();
        let reference = heldout
            .iter()
            .find(|(idx, _)| idx.to_string() == d.key)
            .map(|(_, e)| excerpt(&e.reply, 150))
            .unwrap_or_default();
        let verdict: Judgement = crate::prompt::structured::step(
            job.model,
            job.templates,
            "judge",
            "judge",
            minijinja::context! {
                author => params.author.as_str(),
                topic => d.detail["topic"].as_str().unwrap_or_default(),
                context => context,
                reference => reference,
                draft => excerpt(&text_of(d), 250),
            },
            judge_grammar(),
            24,
        )?;
        m.put(
            library,
            EvalItem {
                kind: EvalItemKind::Judge,
                config: d.config.clone(),
                key: d.key.clone(),
                value: f64::from(verdict.accuracy + verdict.style) / 2.0,
                detail: serde_json::json!({
                    "accuracy": verdict.accuracy,
                    "style": verdict.style,
                    "judge": job.name,
                    "template": format!("judge v{version}"),
                }),
            },
        )?;
        m.progress("judge", m.count(EvalItemKind::Judge), job.total);
    }
    Ok(())
}

/// Results searched per retrieval query: recall is reported at 1, 5 and 10 documents.
const RETRIEVAL_DEPTH: usize = 30;

/// The first `n` words of `text` (the judge's context window is small).
fn excerpt(text: &str, n: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= n {
        words.join(" ")
    } else {
        format!("{} …", words[..n].join(" "))
    }
}

/// Up to `n` held-out topics, one per document first; articles last (they take several
/// generation steps each).
fn draft_topics(
    heldout: &[(usize, &crate::train::dataset::Example)],
    titles: &HashMap<String, String>,
    n: usize,
) -> Vec<(usize, crate::draft::Format, String)> {
    let mut seen_docs = HashSet::new();
    let mut first: Vec<(usize, crate::draft::Format, String)> = Vec::new();
    let mut rest = Vec::new();
    for (idx, e) in heldout {
        let Some((format, topic)) = e.request.clone() else {
            continue;
        };
        let title = e.document_path.as_ref().and_then(|p| titles.get(p));
        if title.is_some_and(|t| crate::train::dataset::is_title_request(&topic, t)) {
            continue;
        }
        if seen_docs.insert(e.document_path.clone()) {
            first.push((*idx, format, topic));
        } else {
            rest.push((*idx, format, topic));
        }
    }
    first.extend(rest);
    first.sort_by_key(|(_, f, _)| *f == crate::draft::Format::Article);
    first.truncate(n);
    first
}

//! The report of an evaluation run, computed from its stored measurements alone: perplexity,
//! style distance, "sounds like you", retrieval, judge scores and draft health per
//! configuration ([`Summary::from_items`]). Nothing here measures; it only counts and averages
//! what `measure_all` stored, so a report can be re-derived and checked.

use super::*;

/// Perplexity of one configuration over the held-out replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct PerplexityRow {
    /// `base` or `adapter:<id>`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Examples scored.
    pub examples: usize,
    /// Tokens scored.
    pub tokens: usize,
    /// Mean negative log-likelihood per token (nats).
    pub nll: f64,
    /// exp(nll).
    pub perplexity: f64,
}

/// Style of one configuration's drafts against the user's held-out writing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct StyleRow {
    /// `base`, `adapter:<id>`, or `others` (reference writing by other people).
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Texts compared.
    pub texts: usize,
    /// Words in them.
    pub words: usize,
    /// Mean sentence length (words).
    pub mean_sentence_length: f64,
    /// Moving-average type-token ratio.
    pub mattr: f64,
    /// Each component of the distance.
    pub distance: StyleDistance,
    /// Components relative to other people's distance, averaged (1 = as far as others).
    pub relative: f64,
}

/// "Sounds like you" probabilities of one group of texts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct AuthorshipRow {
    /// `base`, `adapter:<id>`, `heldout` (the user's unseen writing) or `others`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Each text's probability.
    pub values: Vec<f64>,
    /// Their mean.
    pub mean: f64,
}

/// Retrieval quality of one retriever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct RetrievalRow {
    /// `hybrid`, `bm25` or `vector`.
    pub retriever: String,
    /// Queries.
    pub queries: usize,
    /// Queries the model wrote (the rest fell back to the document title).
    pub model_written: usize,
    /// Share of queries whose document is among the first 1, 5 and 10 documents.
    pub recall_at: BTreeMap<usize, f64>,
    /// Mean reciprocal rank (0 when not within the searched depth).
    pub mrr: f64,
    /// Recall@5 over the model-written queries only.
    pub model_written_recall_at_5: Option<f64>,
}

/// The local judge's scores for one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct JudgeRow {
    /// `base` or `adapter:<id>`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Drafts judged.
    pub drafts: usize,
    /// Mean accuracy (1–3).
    pub accuracy: f64,
    /// Mean style (1–3).
    pub style: f64,
    /// How many drafts got 1, 2 and 3 for accuracy.
    pub accuracy_counts: [usize; 3],
    /// How many drafts got 1, 2 and 3 for style.
    pub style_counts: [usize; 3],
}

/// A report: every number computed from a run's stored measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Summary {
    /// The run.
    pub run: EvalRunRecord,
    /// Its settings (models, adapters, parameters).
    pub settings: Option<RunSettings>,
    /// Held-out examples.
    pub heldout_examples: usize,
    /// Held-out words.
    pub heldout_words: usize,
    /// Perplexity per configuration (base first).
    pub perplexity: Vec<PerplexityRow>,
    /// Style distance per configuration, then other people's writing for scale.
    pub style: Vec<StyleRow>,
    /// "Sounds like you" per configuration, for the held-out writing and for unseen others.
    pub authorship: Vec<AuthorshipRow>,
    /// Retrieval per retriever.
    pub retrieval: Vec<RetrievalRow>,
    /// Judge scores per configuration.
    pub judge: Vec<JudgeRow>,
    /// Drafts with their scores, for reading.
    pub drafts: Vec<DraftRow>,
    /// How well "sounds like you" separates the user's held-out writing from the base model's
    /// drafts on held-out topics: the area under the ROC curve (1 = always, 0.5 = chance).
    #[serde(default)]
    pub authorship_auc: Option<f64>,
    /// Draft health per configuration: how many drafts could be posted as they are.
    #[serde(default)]
    pub health: Vec<HealthRow>,
}

/// Draft health of one configuration's drafts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct HealthRow {
    /// Configuration.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Drafts measured (those stored before draft health existed are not counted).
    pub drafts: usize,
    /// Drafts that passed every hard check.
    pub publishable: usize,
    /// How often each hard check failed, by name.
    pub failed: BTreeMap<String, usize>,
}

impl HealthRow {
    /// Publishable drafts as a share.
    pub fn rate(&self) -> f64 {
        if self.drafts == 0 {
            0.0
        } else {
            self.publishable as f64 / self.drafts as f64
        }
    }
}

/// One draft and what was measured on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct DraftRow {
    /// Configuration.
    pub config: String,
    /// The topic.
    pub topic: String,
    /// The text.
    pub text: String,
    /// "Sounds like you" probability.
    pub authorship: Option<f64>,
    /// Judge: accuracy and style.
    pub judge: Option<(u8, u8)>,
}

impl Summary {
    /// The report of run `id`, computed from its stored measurements.
    pub fn load(store: &crate::store::Store, id: EvalRunId) -> Result<Self, EvalError> {
        let run = store.eval_run(id)?.ok_or(EvalError::NoRun(id))?;
        let items = store.eval_items(id)?;
        Ok(Self::from_items(run, &items))
    }

    /// The report from `items` (the rows of `run`).
    pub fn from_items(run: EvalRunRecord, items: &[EvalItem]) -> Self {
        let settings: Option<RunSettings> = serde_json::from_value(run.params.clone()).ok();
        let label = |config: &str| -> String {
            settings
                .as_ref()
                .and_then(|s| s.configs.iter().find(|c| c.config == config))
                .map(|c| c.label.clone())
                .unwrap_or_else(|| match config {
                    "heldout" => "your held-out writing".into(),
                    "others" => "other writers (unseen)".into(),
                    other => other.into(),
                })
        };
        fn of(items: &[EvalItem], kind: EvalItemKind) -> impl Iterator<Item = &EvalItem> {
            items.iter().filter(move |i| i.kind == kind)
        }
        let of_kind = |kind: EvalItemKind| of(items, kind);
        let mut configs: Vec<String> = settings
            .as_ref()
            .map(|s| s.configs.iter().map(|c| c.config.clone()).collect())
            .unwrap_or_default();
        for i in items {
            if matches!(i.kind, EvalItemKind::Nll | EvalItemKind::Draft)
                && !configs.contains(&i.config)
            {
                configs.push(i.config.clone());
            }
        }

        let heldout: Vec<String> = of_kind(EvalItemKind::Heldout).map(text_of).collect();
        let heldout_words = of_kind(EvalItemKind::Heldout)
            .map(|i| i.value as usize)
            .sum();

        let perplexity = configs
            .iter()
            .filter_map(|c| {
                let rows: Vec<&EvalItem> = of_kind(EvalItemKind::Nll)
                    .filter(|i| &i.config == c)
                    .collect();
                let tokens: usize = rows
                    .iter()
                    .map(|i| i.detail["tokens"].as_u64().unwrap_or(0) as usize)
                    .sum();
                (tokens > 0).then(|| {
                    let nll = rows.iter().map(|i| i.value).sum::<f64>() / tokens as f64;
                    PerplexityRow {
                        config: c.clone(),
                        label: label(c),
                        examples: rows.len(),
                        tokens,
                        nll,
                        perplexity: nll.exp(),
                    }
                })
            })
            .collect();

        let style = style_rows(&configs, items, &heldout, &label);

        let mut authorship = Vec::new();
        let mut groups = configs.clone();
        groups.extend(["heldout".to_string(), "others".to_string()]);
        for g in &groups {
            let values: Vec<f64> = of_kind(EvalItemKind::Authorship)
                .filter(|i| &i.config == g)
                .map(|i| i.value)
                .collect();
            if !values.is_empty() {
                authorship.push(AuthorshipRow {
                    config: g.clone(),
                    label: label(g),
                    mean: values.iter().sum::<f64>() / values.len() as f64,
                    values,
                });
            }
        }

        let values_of = |config: &str| {
            authorship
                .iter()
                .find(|a: &&AuthorshipRow| a.config == config)
                .map(|a| a.values.clone())
        };
        let authorship_auc = match (values_of("heldout"), values_of("base")) {
            (Some(user), Some(machine)) => auc(&user, &machine),
            _ => None,
        };

        let retrieval = ["hybrid", "bm25", "vector"]
            .iter()
            .filter_map(|r| {
                let rows: Vec<&EvalItem> = of_kind(EvalItemKind::Retrieval)
                    .filter(|i| i.config == *r)
                    .collect();
                if rows.is_empty() {
                    return None;
                }
                let n = rows.len() as f64;
                let recall = |k: usize, rows: &[&EvalItem]| {
                    rows.iter()
                        .filter(|i| i.value >= 1.0 && i.value <= k as f64)
                        .count() as f64
                        / rows.len().max(1) as f64
                };
                let written: Vec<&EvalItem> = rows
                    .iter()
                    .copied()
                    .filter(|i| !i.detail["from_title"].as_bool().unwrap_or(false))
                    .collect();
                Some(RetrievalRow {
                    retriever: r.to_string(),
                    queries: rows.len(),
                    model_written: written.len(),
                    recall_at: [1, 5, 10]
                        .into_iter()
                        .map(|k| (k, recall(k, &rows)))
                        .collect(),
                    mrr: rows
                        .iter()
                        .map(|i| if i.value >= 1.0 { 1.0 / i.value } else { 0.0 })
                        .sum::<f64>()
                        / n,
                    model_written_recall_at_5: (!written.is_empty()).then(|| recall(5, &written)),
                })
            })
            .collect();

        let score = |i: &EvalItem, field: &str| i.detail[field].as_u64().unwrap_or(0) as u8;
        let judge = configs
            .iter()
            .filter_map(|c| {
                let rows: Vec<&EvalItem> = of_kind(EvalItemKind::Judge)
                    .filter(|i| &i.config == c)
                    .collect();
                if rows.is_empty() {
                    return None;
                }
                let mut accuracy_counts = [0usize; 3];
                let mut style_counts = [0usize; 3];
                for i in &rows {
                    if let Some(slot) =
                        accuracy_counts.get_mut(score(i, "accuracy").wrapping_sub(1) as usize)
                    {
                        *slot += 1;
                    }
                    if let Some(slot) =
                        style_counts.get_mut(score(i, "style").wrapping_sub(1) as usize)
                    {
                        *slot += 1;
                    }
                }
                let n = rows.len() as f64;
                Some(JudgeRow {
                    config: c.clone(),
                    label: label(c),
                    drafts: rows.len(),
                    accuracy: rows
                        .iter()
                        .map(|i| f64::from(score(i, "accuracy")))
                        .sum::<f64>()
                        / n,
                    style: rows
                        .iter()
                        .map(|i| f64::from(score(i, "style")))
                        .sum::<f64>()
                        / n,
                    accuracy_counts,
                    style_counts,
                })
            })
            .collect();

        let drafts = of_kind(EvalItemKind::Draft)
            .map(|d| DraftRow {
                config: d.config.clone(),
                topic: d.detail["topic"].as_str().unwrap_or_default().to_string(),
                text: text_of(d),
                authorship: of_kind(EvalItemKind::Authorship)
                    .find(|a| a.config == d.config && a.key == d.key)
                    .map(|a| a.value),
                judge: of_kind(EvalItemKind::Judge)
                    .find(|j| j.config == d.config && j.key == d.key)
                    .map(|j| (score(j, "accuracy"), score(j, "style"))),
            })
            .collect();

        let mut health: Vec<HealthRow> = Vec::new();
        for d in of_kind(EvalItemKind::Draft) {
            let Some(publishable) = d.detail["publishable"].as_bool() else {
                continue;
            };
            let i = match health.iter().position(|h| h.config == d.config) {
                Some(i) => i,
                None => {
                    health.push(HealthRow {
                        config: d.config.clone(),
                        label: label(&d.config),
                        drafts: 0,
                        publishable: 0,
                        failed: BTreeMap::new(),
                    });
                    health.len() - 1
                }
            };
            let row = &mut health[i];
            row.drafts += 1;
            row.publishable += usize::from(publishable);
            for name in d.detail["failed"].as_array().into_iter().flatten() {
                if let Some(n) = name.as_str() {
                    *row.failed.entry(n.to_string()).or_default() += 1;
                }
            }
        }

        Self {
            authorship_auc,
            health,
            run,
            settings,
            heldout_examples: heldout.len(),
            heldout_words,
            perplexity,
            style,
            authorship,
            retrieval,
            judge,
            drafts,
        }
    }

    /// The perplexity row of `config`.
    pub fn perplexity_of(&self, config: &str) -> Option<&PerplexityRow> {
        self.perplexity.iter().find(|r| r.config == config)
    }

    /// The style row of `config`.
    pub fn style_of(&self, config: &str) -> Option<&StyleRow> {
        self.style.iter().find(|r| r.config == config)
    }

    /// Headline numbers as (metric, value) pairs: what `--compare` puts side by side.
    pub fn headline(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for p in &self.perplexity {
            out.push((format!("perplexity · {}", p.config), p.perplexity));
        }
        for s in self
            .style
            .iter()
            .filter(|s| s.config != "others" && s.config != "heldout")
        {
            out.push((format!("style distance · {}", s.config), s.relative));
            out.push((format!("Burrows' Delta · {}", s.config), s.distance.delta));
        }
        for a in &self.authorship {
            out.push((format!("sounds like you · {}", a.config), a.mean));
        }
        if let Some(a) = self.authorship_auc {
            out.push(("sounds like you AUC · held-out vs base drafts".into(), a));
        }
        for h in &self.health {
            out.push((format!("publishable · {}", h.config), h.rate()));
        }
        for r in &self.retrieval {
            for (k, v) in &r.recall_at {
                out.push((format!("recall@{k} · {}", r.retriever), *v));
            }
            out.push((format!("MRR · {}", r.retriever), r.mrr));
        }
        for j in &self.judge {
            out.push((format!("judge accuracy · {}", j.config), j.accuracy));
            out.push((format!("judge style · {}", j.config), j.style));
        }
        out
    }
}

/// Style rows: each drafting configuration's drafts, then other people's writing, all against
/// the user's held-out writing. The Delta basis is every single text (held-out passages and
/// reference passages), so z-scores reflect how much rates vary between texts.
fn style_rows(
    configs: &[String],
    items: &[EvalItem],
    heldout: &[String],
    label: &dyn Fn(&str) -> String,
) -> Vec<StyleRow> {
    if heldout.is_empty() {
        return Vec::new();
    }
    let others = authorship::reference_passages();
    let mut singles: Vec<StyleProfile> = heldout.iter().map(|t| StyleProfile::of(&[t])).collect();
    singles.extend(others.iter().map(|t| StyleProfile::of(&[t])));
    let basis = DeltaBasis::from_profiles(&singles);
    let user = StyleProfile::of(heldout);
    let others_profile = StyleProfile::of(&others);
    let others_distance = basis.distance(&others_profile, &user);
    let row = |config: &str, texts: &[String], profile: &StyleProfile| {
        let distance = basis.distance(profile, &user);
        StyleRow {
            config: config.to_string(),
            label: label(config),
            texts: texts.len(),
            words: profile.words,
            mean_sentence_length: profile.mean_sentence_length(),
            mattr: profile.mattr,
            relative: distance.relative_to(&others_distance),
            distance,
        }
    };
    let mut rows = Vec::new();
    for c in configs {
        let texts: Vec<String> = items
            .iter()
            .filter(|i| i.kind == EvalItemKind::Draft && &i.config == c)
            .map(text_of)
            .collect();
        if !texts.is_empty() {
            rows.push(row(c, &texts, &StyleProfile::of(&texts)));
        }
    }
    rows.push(row("others", &others, &others_profile));
    let mut user_row = row("heldout", heldout, &user);
    user_row.label = "your held-out writing".into();
    rows.push(user_row);
    rows
}

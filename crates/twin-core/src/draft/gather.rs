//! Gathering what a draft stands on, before any writing: filters the self-query step may set
//! (kept only where the request names them), the topic and its variants embedded in one batch,
//! hybrid search per query fused by RRF, the reranker's reordering of the head, then MMR
//! under a token budget, exemplars of the format and the style card.

use super::*;

/// Filters from the self-query step, kept only where the request supports them: a small model
/// invents dates, so a date filter needs a year in the request, and a platform must exist.
pub(super) fn filter_from(query: &SelfQuery, topic: &str, platforms: &[String]) -> SearchFilter {
    let names_year = names_year(topic);
    let valid_date = |d: &Option<String>| {
        d.as_ref()
            .filter(|d| names_year && d.len() == 10 && topic.contains(&d[..4]))
            .cloned()
    };
    let platform = query
        .platform
        .as_ref()
        .filter(|p| platforms.contains(p) && names_platform(topic, p));
    SearchFilter {
        source: None,
        platform: platform.cloned(),
        kind: None,
        date_from: valid_date(&query.date_from),
        date_to: valid_date(&query.date_to),
    }
}

/// Whether `topic` names a year (19xx or 20xx).
pub(super) fn names_year(topic: &str) -> bool {
    topic
        .split(|c: char| !c.is_ascii_digit())
        .any(|d| d.len() == 4 && (d.starts_with("19") || d.starts_with("20")))
}

/// Whether `topic` names `platform` as a word ("blogs" names blog; "thread", "tweet" and
/// "twitter" name X, and the letter x inside "next" does not).
pub(super) fn names_platform(topic: &str, platform: &str) -> bool {
    let topic = topic.to_lowercase();
    let mut words = topic.split(|c: char| !c.is_alphanumeric());
    words.any(|w| {
        w == platform
            || (platform.len() > 2 && w.starts_with(platform))
            || (platform == "x"
                && (w.starts_with("thread") || w.starts_with("tweet") || w == "twitter"))
    })
}

/// Whether the self-query step could yield a filter [`filter_from`] keeps: only a topic that
/// names a year or a known platform can. For any other the step's answer would be thrown away,
/// so it is skipped: on 2 CPU cores it is 1.5–2 s of the first token's wait.
pub(super) fn may_name_filters(topic: &str, platforms: &[String]) -> bool {
    names_year(topic) || platforms.iter().any(|p| names_platform(topic, p))
}

/// A variant keeps its place only if it stays near the topic in embedding space: small models
/// sometimes answer the expansion step with unrelated text, which would pull in unrelated
/// context through fusion.
pub const VARIANT_MIN_SIMILARITY: f32 = 0.35;

/// The queries a draft searches, each with its embedding: the topic first, then the distinct,
/// non-empty `variants` within [`VARIANT_MIN_SIMILARITY`] of it. One batch embeds them all, and
/// the searches reuse the vectors.
pub(super) fn embedded_queries(
    embedder: &crate::engine::Embedder,
    topic: &str,
    variants: Vec<String>,
) -> Result<Vec<(String, Vec<f32>)>, DraftError> {
    let mut distinct: Vec<String> = Vec::new();
    for v in variants {
        let v = v.trim().to_string();
        if !v.is_empty()
            && reads_as_query(&v)
            && !v.eq_ignore_ascii_case(topic)
            && !distinct.iter().any(|d| d.eq_ignore_ascii_case(&v))
        {
            distinct.push(v);
        }
    }
    let mut texts = vec![topic];
    texts.extend(distinct.iter().map(String::as_str));
    let mut vectors = embedder
        .embed(&texts)
        .map_err(LibraryError::from)?
        .into_iter();
    let mut queries = vec![(topic.to_string(), vectors.next().unwrap_or_default())];
    for (q, v) in distinct.into_iter().zip(vectors) {
        if retrieve::cosine(&queries[0].1, &v) >= VARIANT_MIN_SIMILARITY {
            queries.push((q, v));
        }
    }
    Ok(queries)
}

/// Whether a model-written variant is a search query, not a link ("https://github.com/…",
/// seen from the 135M model) or the instruction read back ("with other words than the request").
pub(super) fn reads_as_query(variant: &str) -> bool {
    let lower = variant.to_lowercase();
    ![
        "://",
        "www.",
        ".com",
        "other words",
        "search quer",
        "the request",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

/// Candidates a reranker reads: the fused list's head, where reordering changes what is picked.
pub(super) const RERANK_CANDIDATES: usize = 24;

/// The registry's active reranker, loaded (cached by the library), with its name.
pub(super) fn active_reranker(
    library: &mut Library,
) -> Result<Option<(String, std::sync::Arc<crate::engine::Reranker>)>, DraftError> {
    use crate::models::registry::{self, ModelKind};
    let Some(record) = registry::active(library.store(), ModelKind::Reranker)? else {
        return Ok(None);
    };
    let reranker = library.reranker_at(std::path::Path::new(&record.path))?;
    Ok(Some((record.name, reranker)))
}

/// Replace the fused scores of the first [`RERANK_CANDIDATES`] candidates by the reranker's,
/// which reads the topic and each chunk together (what neither BM25 nor separate vectors can),
/// and order them by it; the rest are dropped.
pub(super) fn rerank(
    reranker: &crate::engine::Reranker,
    topic: &str,
    candidates: &mut Vec<(ChunkHit, f64)>,
) -> Result<(), DraftError> {
    let _span = tracing::info_span!("rerank", candidates = candidates.len()).entered();
    candidates.truncate(RERANK_CANDIDATES);
    let texts: Vec<&str> = candidates.iter().map(|(h, _)| h.text.as_str()).collect();
    let scores = reranker.score(topic, &texts)?;
    for ((_, score), s) in candidates.iter_mut().zip(scores) {
        *score = f64::from(s);
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(())
}

/// The numbered sources of `context`, each with an excerpt around the terms of `topic`.
pub(super) fn citations_of(context: &[ContextChunk], topic: &str) -> Vec<Citation> {
    let terms = crate::search::query_terms(topic);
    context
        .iter()
        .enumerate()
        .map(|(i, c)| Citation {
            n: i + 1,
            chunk_id: c.hit.chunk_id,
            document_id: c.hit.document_id,
            title: c.hit.title.clone(),
            path: c.hit.path.display().to_string(),
            heading_path: c.hit.heading_path.clone(),
            platform: c.hit.platform.clone(),
            date: c.hit.date.clone(),
            snippet: crate::search::snippet(&c.hit.text, &terms, 220),
            score: c.score,
        })
        .collect()
}

/// Steps 1–4: filters, queries, retrieval, the context and the voice.
pub(super) fn gather(library: &mut Library, run: &mut Run<'_>) -> Result<Gathered, DraftError> {
    let request = run.request;
    let format = request.format;
    let embedder = library.embedder()?;
    let reranker = if request.rerank && request.retrieval {
        active_reranker(library)?
    } else {
        None
    };
    let store = library.store();
    let platforms: Vec<String> = store.platforms()?.into_iter().map(|(p, _)| p).collect();

    // 1. Self-query.
    let t = Instant::now();
    let mut filter = SearchFilter::default();
    if request.self_query && request.retrieval && may_name_filters(&request.topic, &platforms) {
        let q: SelfQuery = run.structured(
            "self_query",
            "self_query",
            minijinja::context! { platforms => platforms },
            grammar::self_query_grammar(&platforms),
            grammar::max_tokens_for(1) + 48,
            None,
        )?;
        filter = filter_from(&q, &request.topic, &platforms);
        run.detail.self_query = Some(q);
    }
    run.detail.timings.self_query_ms = ms(t);

    // 2. Query expansion.
    let t = Instant::now();
    let mut variants = Vec::new();
    let expansions = request.expansions_for(run.model.info().parameters);
    if expansions > 0 && request.retrieval {
        let e: Expansion = run.structured(
            "expand",
            "expand",
            minijinja::context! { n => expansions },
            grammar::expansion_grammar(expansions),
            grammar::max_tokens_for(expansions),
            None,
        )?;
        variants = e.queries;
    }
    run.detail.timings.expand_ms = ms(t);

    // 3. Retrieval: every query, fused; a filter that leaves too little is dropped.
    (run.on_event)(DraftEvent::Step {
        name: "retrieve".into(),
    });
    let t = Instant::now();
    let context_chunks = request.context_chunks_for(run.model.info().parameters);
    let per_query = (context_chunks * 3).max(10);
    let (queries, mut candidates) = if request.retrieval {
        crate::search::check_embedder(store, &embedder)?;
        let queries = embedded_queries(&embedder, &request.topic, variants)?;
        let candidates = retrieve::multi_query(store, &queries, &filter, per_query)?;
        (queries, candidates)
    } else {
        (Vec::new(), Vec::new())
    };
    if request.retrieval && candidates.len() < context_chunks.min(3) && !filter.is_empty() {
        run.detail.filter_dropped = true;
        candidates = retrieve::multi_query(store, &queries, &SearchFilter::default(), per_query)?;
    }
    candidates.retain(|(hit, _)| !request.excludes(hit));
    run.detail.timings.search_ms = ms(t);
    let t = Instant::now();
    let reranked = reranker.is_some();
    if let Some((name, reranker)) = reranker {
        rerank(&reranker, &request.topic, &mut candidates)?;
        run.detail.reranker = Some(name);
    }
    run.detail.timings.rerank_ms = ms(t);
    let t = Instant::now();
    // A reranker has read the topic with every candidate; otherwise its embedding anchors them.
    let topic_vector = queries
        .first()
        .filter(|_| !reranked)
        .map(|(_, v)| v.as_slice());
    let context: Vec<ContextChunk> = retrieve::select_mmr(
        store,
        candidates,
        topic_vector,
        context_chunks,
        request.context_tokens,
        0.7,
        &|text| run.model.count_tokens(text),
    )?;
    let exemplars = if request.retrieval {
        let mut picked = retrieve::exemplars(
            store,
            format.platforms(),
            request.exemplars + request.exclude_documents.len(),
        )?;
        picked.retain(|hit| !request.excludes(hit));
        picked.truncate(request.exemplars);
        picked
    } else {
        Vec::new()
    };
    let card = style::card(store)?;
    run.detail.timings.select_ms = ms(t);
    run.detail.timings.retrieval_ms = ms(run.started);
    run.detail.filter = filter;
    run.detail.queries = if queries.is_empty() {
        vec![request.topic.clone()]
    } else {
        queries.into_iter().map(|(q, _)| q).collect()
    };
    run.detail.exemplar_chunks = exemplars.iter().map(|h| h.chunk_id).collect();
    run.detail.style_card = card.text.clone();

    let citations = citations_of(&context, &request.topic);
    run.detail.citations = citations;
    let points = if request.own_points_for(run.model.info().parameters) {
        own_points(&embedder, &request.topic, &context)?
    } else {
        None
    };
    Ok(Gathered {
        exemplar_texts: exemplars
            .iter()
            .map(|h| format::cap_words(&h.text, 110))
            .collect(),
        card_text: card.text,
        context,
        plan: None,
        points,
    })
}

/// A post's plan from the author's sentences in `context` that say most about `topic` (see
/// [`super::points`]); `None` when the passages hold fewer than two usable sentences.
fn own_points(
    embedder: &crate::engine::Embedder,
    topic: &str,
    context: &[ContextChunk],
) -> Result<Option<String>, DraftError> {
    let _span = tracing::info_span!("own_points").entered();
    let sentences = super::points::candidates(context.iter().map(|c| c.hit.text.as_str()));
    if sentences.len() < 2 {
        return Ok(None);
    }
    let mut texts: Vec<&str> = vec![topic];
    texts.extend(sentences.iter().map(String::as_str));
    let mut vectors = embedder.embed(&texts).map_err(LibraryError::from)?;
    let topic = vectors.remove(0);
    let picked = super::points::pick(&topic, &sentences, &vectors, POINTS);
    Ok(Some(super::points::as_plan(&picked)))
}

/// Points in a post's plan: as many as the model's own plan had.
const POINTS: usize = 3;

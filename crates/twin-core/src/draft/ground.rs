//! Grounding a free-form request (a chat through the local API) in the user's writing: the
//! drafting pipeline's retrieval for one query — hybrid search fused by RRF, the active
//! reranker, MMR under a token budget — and the same numbered citations. The model-written
//! steps before it (self-query, query expansion) are left out: they cost a second or more of
//! generation per request, which an editor calling the API waits through on every keystroke.

use super::*;

/// What a grounded request stands on.
#[derive(Clone, Debug, Serialize)]
pub struct Grounding {
    /// The passages chosen, best first.
    pub context: Vec<ContextChunk>,
    /// Their citations, numbered as in [`Grounding::system_text`].
    pub citations: Vec<Citation>,
}

impl Grounding {
    /// A system message that hands the passages to the model, numbered as the citations are;
    /// `None` when nothing was found.
    pub fn system_text(&self, author: &str) -> Option<String> {
        if self.context.is_empty() {
            return None;
        }
        let mut text = format!(
            "Passages from {author}'s own writing. Answer from them where they help, in \
             {author}'s voice, and do not invent facts they do not state.\n"
        );
        for (chunk, citation) in self.context.iter().zip(&self.citations) {
            text.push_str(&format!(
                "\n[{}] {}\n{}\n",
                citation.n,
                citation.title,
                format::cap_words(&chunk.hit.text, 160)
            ));
        }
        Some(text)
    }
}

/// The passages of `library` that ground `query`: at most `keep`, within `budget_tokens` as
/// `model` counts them.
pub fn ground(
    library: &mut Library,
    model: &ChatModel,
    query: &str,
    keep: usize,
    budget_tokens: usize,
) -> Result<Grounding, DraftError> {
    let _span = tracing::info_span!("ground", keep).entered();
    let embedder = library.embedder()?;
    let reranker = active_reranker(library)?;
    let store = library.store();
    crate::search::check_embedder(store, &embedder)?;
    let queries = embedded_queries(&embedder, query, Vec::new())?;
    let per_query = (keep * 3).max(10);
    let mut candidates =
        retrieve::multi_query(store, &queries, &SearchFilter::default(), per_query)?;
    let reranked = reranker.is_some();
    if let Some((_, reranker)) = reranker {
        rerank(&reranker, query, &mut candidates)?;
    }
    let topic_vector = queries
        .first()
        .filter(|_| !reranked)
        .map(|(_, v)| v.as_slice());
    let context = retrieve::select_mmr(
        store,
        candidates,
        topic_vector,
        keep,
        budget_tokens,
        0.7,
        &|text| model.count_tokens(text),
    )?;
    let citations = citations_of(&context, query);
    Ok(Grounding { context, citations })
}

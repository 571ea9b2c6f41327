//! Brainstorming from the user's own writing (`twin ideas`, the Draft screen's Ideas panel).
//!
//! The user's recurring themes are clusters of their chunks' embeddings (k-means on the unit
//! sphere, seeded deterministically, so the same library gives the same themes). Each theme is
//! named by the local model from its most central passages, in one grammar-constrained step
//! that also proposes a post title none of those passages covers: the theme's new angle.
//! Themes the user has not written about for a long time (relative to their newest piece) give
//! a second kind of idea. Every idea cites passages of its own theme.

use super::*;
use crate::prompt::templates::Templates;
use crate::store::{ChunkId, DocumentId};
use std::collections::{HashMap, HashSet};

/// Chunks clustered at most; a larger library is sampled evenly.
const MAX_CHUNKS: usize = 20_000;
/// k-means rounds (it settles in far fewer on real writing).
const ROUNDS: usize = 30;
/// Passages that name a theme and back its ideas.
const CENTRAL: usize = 3;
/// A theme untouched this many days before the newest piece is dormant.
const DORMANT_DAYS: i64 = 120;

/// A recurring theme of the user's writing.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Theme {
    /// Its number in this brainstorm, largest theme first.
    pub id: usize,
    /// The name the local model gave it (its keywords when the model gave none about it).
    pub name: String,
    /// Whether the name is the model's (false: made of the keywords).
    pub named_by_model: bool,
    /// The words most particular to it.
    pub keywords: Vec<String>,
    /// Documents with a passage in it.
    pub documents: usize,
    /// Its passages (chunk ids).
    pub chunks: Vec<i64>,
    /// The newest date among its documents.
    pub last_date: Option<String>,
    /// Its most central passages.
    pub passages: Vec<Citation>,
}

/// What kind of idea.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum IdeaKind {
    /// A recurring theme, from an angle its passages have not taken.
    NewAngle,
    /// A theme the user has not written about for a long time.
    Dormant,
    /// The theme whose pieces were received best (where exports count likes, reposts, opens).
    BestReceived,
}

/// One idea: a one-line topic, why, and the passages it came from.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Idea {
    /// What kind.
    pub kind: IdeaKind,
    /// The theme's id.
    pub theme: usize,
    /// The topic, ready to draft.
    pub topic: String,
    /// Why this idea, in a sentence.
    pub why: String,
    /// The theme's passages it came from.
    pub citations: Vec<Citation>,
}

/// A brainstorm: the themes and the ideas from them.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Ideas {
    /// The themes, largest first.
    pub themes: Vec<Theme>,
    /// The ideas: each theme's new angle, then the dormant themes.
    pub ideas: Vec<Idea>,
}

/// Brainstorm from `library` with `model` (the base model names the themes), at most
/// `max_themes` themes.
pub fn brainstorm(
    library: &mut Library,
    model: &ChatModel,
    author: &str,
    max_themes: usize,
    cancel: &CancelToken,
) -> Result<Ideas, DraftError> {
    let _span = tracing::info_span!("ideas", max_themes).entered();
    let templates = Templates::in_data_dir(library.data_dir())?;
    let store = library.store();
    let mut ids = store.embedded_original_chunk_ids()?;
    if ids.len() > MAX_CHUNKS {
        let step = ids.len() as f64 / MAX_CHUNKS as f64;
        ids = (0..MAX_CHUNKS)
            .map(|i| ids[(i as f64 * step) as usize])
            .collect();
    }
    let vectors: HashMap<ChunkId, Vec<f32>> = store.vectors_of(&ids)?.into_iter().collect();
    let hits: HashMap<ChunkId, ChunkHit> = store
        .chunk_hits(&ids)?
        .into_iter()
        .map(|h| (h.chunk_id, h))
        .collect();
    let points: Vec<(ChunkId, &Vec<f32>)> = ids
        .iter()
        .filter(|id| hits.contains_key(id))
        .filter_map(|id| vectors.get(id).map(|v| (*id, v)))
        .collect();
    if points.len() < 6 {
        return Err(DraftError::EmptyLibrary);
    }
    let k = ((points.len() as f64 / 2.0).sqrt().round() as usize).clamp(2, 12);
    let vecs: Vec<&[f32]> = points.iter().map(|(_, v)| v.as_slice()).collect();
    let (assignment, centroids) = kmeans(&vecs, k);

    // Words particular to each cluster: in how many of its chunks a word occurs, against how
    // rare it is across the library.
    let words_of = |id: &ChunkId| -> HashSet<String> {
        crate::search::query_terms(&hits[id].text)
            .into_iter()
            .filter(|w| {
                w.len() >= 4
                    && w.chars().all(char::is_alphabetic)
                    && !crate::prompt::words::FUNCTION_WORDS.contains(&w.as_str())
                    && !FILLER.contains(&w.as_str())
            })
            .collect()
    };
    let chunk_words: Vec<HashSet<String>> = points.iter().map(|(id, _)| words_of(id)).collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for words in &chunk_words {
        for w in words {
            *df.entry(w.as_str()).or_default() += 1;
        }
    }

    let mut themes = Vec::new();
    for (c, centroid) in centroids.iter().enumerate() {
        let members: Vec<usize> = (0..points.len()).filter(|&i| assignment[i] == c).collect();
        let documents: HashSet<DocumentId> = members
            .iter()
            .map(|&i| hits[&points[i].0].document_id)
            .collect();
        // A theme recurs: one piece is not a theme.
        if documents.len() < 2 {
            continue;
        }
        let mut by_centrality = members.clone();
        by_centrality.sort_by(|&a, &b| {
            retrieve::cosine(vecs[b], centroid).total_cmp(&retrieve::cosine(vecs[a], centroid))
        });
        // Each document's most central passage, most central first.
        let mut seen = HashSet::new();
        let per_document: Vec<ContextChunk> = by_centrality
            .iter()
            .filter(|&&i| seen.insert(hits[&points[i].0].document_id))
            .map(|&i| ContextChunk {
                hit: hits[&points[i].0].clone(),
                score: f64::from(retrieve::cosine(vecs[i], centroid)),
                vector: Vec::new(),
            })
            .collect();
        let central: Vec<ContextChunk> = per_document.iter().take(CENTRAL).cloned().collect();
        // Titles say what a piece is about better than any sentence in it: a word in a
        // member document's title counts three times.
        let mut tf: HashMap<&str, usize> = HashMap::new();
        for &i in &members {
            for w in &chunk_words[i] {
                *tf.entry(w.as_str()).or_default() += 1;
            }
        }
        let mut titled: HashSet<DocumentId> = HashSet::new();
        for &i in &members {
            let hit = &hits[&points[i].0];
            if titled.insert(hit.document_id) {
                for w in crate::search::query_terms(&hit.title) {
                    if let Some((word, _)) = df.get_key_value(w.as_str()) {
                        *tf.entry(word).or_default() += 3;
                    }
                }
            }
        }
        let n = points.len() as f64;
        let mut scored: Vec<(&str, f64)> = tf
            .iter()
            .filter(|(_, &count)| count >= 2)
            .map(|(w, &count)| {
                let idf = (n / df[w] as f64).ln();
                (*w, count as f64 / members.len() as f64 * idf)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let keywords: Vec<String> = scored.iter().take(4).map(|(w, _)| w.to_string()).collect();
        let last_date = members
            .iter()
            .filter_map(|&i| hits[&points[i].0].date.clone())
            .max();
        themes.push((
            Theme {
                id: 0,
                name: String::new(),
                named_by_model: false,
                keywords,
                documents: documents.len(),
                chunks: members.iter().map(|&i| points[i].0).collect(),
                last_date,
                passages: citations_of(&central, ""),
            },
            central,
            per_document,
        ));
    }
    themes.sort_by_key(|t| std::cmp::Reverse((t.0.documents, t.0.chunks.len())));
    themes.truncate(max_themes.max(1));

    let newest = store.newest_date()?;
    let mut ideas = Vec::new();
    let mut dormant = Vec::new();
    let mut named = Vec::new();
    let engagement: HashMap<DocumentId, i64> =
        store.engagement_by_document()?.into_iter().collect();
    let mut received: Vec<(usize, Vec<DocumentId>)> = Vec::new();
    let mut per_theme_documents: Vec<Vec<ContextChunk>> = Vec::new();
    for (id, (mut theme, central, per_document)) in themes.into_iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(DraftError::Cancelled);
        }
        theme.id = id + 1;
        let passages: Vec<String> = central
            .iter()
            .map(|c| format!("{}: {}", c.hit.title, format::cap_words(&c.hit.text, 60)))
            .collect();
        let naming: Option<grammar::ThemeNaming> = structured::step(
            model,
            &templates,
            "theme",
            "theme",
            minijinja::context! { author => author, passages => passages },
            grammar::theme_grammar(),
            grammar::max_tokens_for(2),
        )
        .ok();
        // A name must be about the theme: it shares a word with the theme's keywords or its
        // passages' titles. Small models otherwise answer with a person's name from the text.
        let mut grounding: HashSet<String> = theme.keywords.iter().cloned().collect();
        for c in &central {
            grounding.extend(crate::search::query_terms(&c.hit.title));
        }
        let fallback = capitalised(
            &theme
                .keywords
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" and "),
        );
        let (name, angle) = match naming {
            Some(n) => (
                clean_name(&n.name, &grounding).unwrap_or_else(|| fallback.clone()),
                clean_angle(&n.angle),
            ),
            None => (fallback.clone(), None),
        };
        theme.named_by_model = name != fallback;
        theme.name = name;
        let titles: Vec<String> = central.iter().map(|c| c.hit.title.to_lowercase()).collect();
        let topic = match angle.filter(|a| !titles.contains(&a.to_lowercase())) {
            Some(a) => a,
            None => {
                // The theme's most central piece, taken further: the user's own title says
                // what the new post answers.
                match central.first().map(|c| c.hit.title.trim()) {
                    Some(title) if !title.is_empty() => {
                        format!("{}: what \u{201c}{title}\u{201d} left out", theme.name)
                    }
                    _ => format!("{}: what I have not said yet", theme.name),
                }
            }
        };
        ideas.push(Idea {
            kind: IdeaKind::NewAngle,
            theme: theme.id,
            topic,
            why: format!(
                "You keep coming back to {} ({} pieces, latest {}); none of them takes this angle.",
                theme.name,
                theme.documents,
                theme.last_date.as_deref().unwrap_or("undated")
            ),
            citations: theme.passages.clone(),
        });
        let idle = days_between(theme.last_date.as_deref(), newest.as_deref());
        if idle.is_some_and(|d| d >= DORMANT_DAYS) {
            let mut recent = central.clone();
            recent.sort_by(|a, b| b.hit.date.cmp(&a.hit.date));
            recent.truncate(2);
            dormant.push(Idea {
                kind: IdeaKind::Dormant,
                theme: theme.id,
                topic: format!("{}, revisited: what I think now", theme.name),
                why: format!(
                    "You have not written about {} since {} ({} days before your newest piece).",
                    theme.name,
                    theme.last_date.as_deref().unwrap_or("?"),
                    idle.unwrap_or(0)
                ),
                citations: citations_of(&recent, ""),
            });
        }
        received.push((
            theme.id,
            per_document.iter().map(|c| c.hit.document_id).collect(),
        ));
        per_theme_documents.push(per_document);
        named.push(theme);
    }
    // The theme readers responded to most, where exports counted it.
    if let Some(best) = best_received(&received, &engagement) {
        let theme = &named[best.theme - 1];
        let mut top: Vec<ContextChunk> = per_theme_documents[best.theme - 1].clone();
        top.sort_by_key(|c| std::cmp::Reverse(engagement.get(&c.hit.document_id).copied()));
        top.truncate(CENTRAL);
        ideas.push(Idea {
            kind: IdeaKind::BestReceived,
            theme: theme.id,
            topic: format!("{}: a follow-up to my best-received posts", theme.name),
            why: format!(
                "Your {} counted pieces on {} drew {:.0} reactions on average (likes and reposts \
                 on X, email opens on Substack), against {:.0} across all your counted pieces.",
                best.counted, theme.name, best.mean, best.library_mean
            ),
            citations: citations_of(&top, ""),
        });
    }
    ideas.extend(dormant);
    Ok(Ideas {
        themes: named,
        ideas,
    })
}

/// Counted pieces a library needs before one theme can be called its best received.
const MIN_COUNTED: usize = 4;

/// The best-received theme: its id, how many of its pieces were counted, their mean
/// engagement and the library's.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Received {
    theme: usize,
    counted: usize,
    mean: f64,
    library_mean: f64,
}

/// Among `themes` (id, documents), the one whose counted documents drew the most engagement on
/// average: at least two counted pieces, and clearly (×1.2) above the library's mean.
fn best_received(
    themes: &[(usize, Vec<DocumentId>)],
    engagement: &HashMap<DocumentId, i64>,
) -> Option<Received> {
    if engagement.len() < MIN_COUNTED {
        return None;
    }
    let library_mean = engagement.values().sum::<i64>() as f64 / engagement.len() as f64;
    themes
        .iter()
        .filter_map(|(id, documents)| {
            let counts: Vec<i64> = documents
                .iter()
                .filter_map(|d| engagement.get(d).copied())
                .collect();
            (counts.len() >= 2).then(|| Received {
                theme: *id,
                counted: counts.len(),
                mean: counts.iter().sum::<i64>() as f64 / counts.len() as f64,
                library_mean,
            })
        })
        .filter(|r| r.mean >= 1.2 * library_mean && r.mean > 0.0)
        .max_by(|a, b| a.mean.total_cmp(&b.mean))
}

/// Words of prose that never name a theme.
const FILLER: &[&str] = &[
    "also", "back", "before", "behind", "being", "could", "every", "first", "from", "give",
    "going", "into", "just", "know", "like", "make", "many", "more", "most", "much", "never",
    "only", "other", "over", "same", "some", "still", "than", "them", "then", "there", "these",
    "thing", "things", "think", "this", "those", "thread", "threads", "time", "times", "very",
    "want", "well", "were", "what", "when", "which", "while", "will", "with", "would", "year",
    "years", "your",
];

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A model's theme name, tidied (1 to 6 words, no trailing punctuation, capitalised), if it
/// shares a word with `grounding`.
fn clean_name(name: &str, grounding: &HashSet<String>) -> Option<String> {
    let name = name.trim().trim_end_matches(['.', ':', ';', ',']).trim();
    let words = name.split_whitespace().count();
    if !(1..=6).contains(&words) {
        return None;
    }
    let about = crate::search::query_terms(name).iter().any(|w| {
        grounding
            .iter()
            .any(|g| g == w || (w.len() >= 5 && g.starts_with(&w[..w.len() - 1])))
    });
    about.then(|| capitalised(name))
}

/// A model's post title, tidied: no list marker, 4 to 16 words, not cut off mid-clause.
fn clean_angle(angle: &str) -> Option<String> {
    let angle = angle
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ')' || c == '-')
        .trim();
    let words = angle.split_whitespace().count();
    // A title is one sentence: a second one is the model going on.
    let cut = angle.ends_with([',', ';', ':'])
        || angle.ends_with(" and")
        || angle.ends_with(" the")
        || angle.trim_end_matches(['.', '!', '?']).contains(". ");
    ((4..=16).contains(&words) && !cut).then(|| capitalised(angle))
}

/// Days from `from` to `to` (YYYY-MM-DD), when both are dates.
fn days_between(from: Option<&str>, to: Option<&str>) -> Option<i64> {
    let day = |d: &str| -> Option<i64> {
        let mut parts = d.get(..10)?.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, dd) = (parts.next()??, parts.next()??, parts.next()??);
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(era * 146_097 + doe)
    };
    Some(day(to?)? - day(from?)?)
}

/// k-means on unit vectors by cosine: k-means++ seeding from a fixed seed, then rounds until
/// nothing moves. The assignment of each point and the (re-normalised) centroids.
fn kmeans(points: &[&[f32]], k: usize) -> (Vec<usize>, Vec<Vec<f32>>) {
    let mut state: u64 = 0x7717_7717_7717_7717;
    let mut next = move || {
        // xorshift64*: enough for picking seeds; fixed, so themes are stable between runs.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let distance = |a: &[f32], b: &[f32]| (1.0 - retrieve::cosine(a, b)).max(0.0) as f64;
    let mut centroids: Vec<Vec<f32>> = vec![points[0].to_vec()];
    while centroids.len() < k.min(points.len()) {
        let d: Vec<f64> = points
            .iter()
            .map(|p| {
                centroids
                    .iter()
                    .map(|c| distance(p, c))
                    .fold(f64::MAX, f64::min)
                    .powi(2)
            })
            .collect();
        let total: f64 = d.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut target = next() * total;
        let mut pick = points.len() - 1;
        for (i, w) in d.iter().enumerate() {
            if target < *w {
                pick = i;
                break;
            }
            target -= w;
        }
        centroids.push(points[pick].to_vec());
    }
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..ROUNDS {
        let mut moved = false;
        for (i, p) in points.iter().enumerate() {
            let best = (0..centroids.len())
                .max_by(|&a, &b| {
                    retrieve::cosine(p, &centroids[a])
                        .total_cmp(&retrieve::cosine(p, &centroids[b]))
                })
                .unwrap_or(0);
            if assignment[i] != best {
                assignment[i] = best;
                moved = true;
            }
        }
        if !moved {
            break;
        }
        for (c, centroid) in centroids.iter_mut().enumerate() {
            let mut sum = vec![0f32; centroid.len()];
            for (p, _) in points.iter().zip(&assignment).filter(|(_, a)| **a == c) {
                for (s, x) in sum.iter_mut().zip(p.iter()) {
                    *s += x;
                }
            }
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                *centroid = sum.into_iter().map(|x| x / norm).collect();
            }
        }
    }
    (assignment, centroids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_received_theme_needs_counts_and_a_clear_lead() {
        let engagement: HashMap<DocumentId, i64> = [(1, 10), (2, 12), (3, 50), (4, 70), (5, 9)]
            .into_iter()
            .collect();
        let themes = vec![(1, vec![1, 2, 5]), (2, vec![3, 4]), (3, vec![6, 7])];
        let best = best_received(&themes, &engagement).unwrap();
        assert_eq!((best.theme, best.counted), (2, 2));
        assert_eq!(best.mean, 60.0);
        assert!((best.library_mean - 30.2).abs() < 1e-9);
        // Too few counted pieces in the library: no claim.
        let few: HashMap<DocumentId, i64> = [(3, 50), (4, 70)].into_iter().collect();
        assert_eq!(best_received(&themes, &few), None);
        // No theme clearly above the rest.
        let flat: HashMap<DocumentId, i64> = [(1, 10), (2, 10), (3, 11), (4, 10), (5, 10)]
            .into_iter()
            .collect();
        assert_eq!(best_received(&themes, &flat), None);
    }

    #[test]
    fn kmeans_separates_two_directions_and_dates_count_days() {
        let a = [1.0f32, 0.0, 0.0];
        let a2 = [0.99f32, 0.141, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        let b2 = [0.0f32, 0.99, 0.141];
        let points: Vec<&[f32]> = vec![&a, &b, &a2, &b2];
        let (assign, _) = kmeans(&points, 2);
        assert_eq!(assign[0], assign[2]);
        assert_eq!(assign[1], assign[3]);
        assert_ne!(assign[0], assign[1]);
        assert_eq!(
            days_between(Some("2024-12-31"), Some("2025-03-01")),
            Some(60)
        );
        assert_eq!(days_between(None, Some("2025-03-01")), None);
        let grounding: HashSet<String> = ["shipping".to_string(), "workshop".to_string()].into();
        assert_eq!(
            clean_name(" shipping small.  ", &grounding).as_deref(),
            Some("Shipping small")
        );
        assert_eq!(clean_name("Sofi", &grounding), None, "a name from the text");
        assert_eq!(clean_name("a b c d e f g", &grounding), None);
        assert_eq!(
            clean_angle("1. A thread on small pull requests is a whole table glued,"),
            None
        );
        assert_eq!(
            clean_angle("A dull chisel is more dangerous than a sharp one. A dull one"),
            None
        );
        assert_eq!(
            clean_angle("2) why jigs beat heroics").as_deref(),
            Some("Why jigs beat heroics")
        );
    }
}

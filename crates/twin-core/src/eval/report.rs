//! The evaluation report as one self-contained HTML page with inline SVG charts (no scripts,
//! no remote fonts: it opens offline and in the app's strict CSP), and `--compare` tables.

use super::{EvalError, Summary};
use std::fmt::Write;

/// Escape text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const ROW: f64 = 26.0;
const LABEL_W: f64 = 230.0;
const BAR_W: f64 = 360.0;

/// Horizontal bars, one per (label, value), scaled to the largest value; `fmt` prints values.
fn bar_chart(rows: &[(String, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    if rows.is_empty() {
        return "<p class=muted>No data.</p>".into();
    }
    let max = rows.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let height = ROW * rows.len() as f64 + 8.0;
    let mut svg = format!(
        r#"<svg class=chart width="{w}" height="{height}" viewBox="0 0 {w} {height}" role="img">"#,
        w = LABEL_W + BAR_W + 90.0
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = (value / max * BAR_W).max(1.0);
        let _ = write!(
            svg,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{LABEL_W}" y="{y}" width="{w:.1}" height="{bh}" class="bar b{c}"/><text x="{vx:.1}" y="{ty}">{value}</text>"#,
            lx = LABEL_W - 8.0,
            ty = y + 15.0,
            label = esc(label),
            bh = ROW - 8.0,
            c = i % 4,
            vx = LABEL_W + w + 6.0,
            value = esc(&fmt(*value)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One row of dots per group on a 0–1 axis, with each group's mean as a tick.
fn strip_chart(rows: &[(String, Vec<f64>)]) -> String {
    if rows.is_empty() {
        return "<p class=muted>No data.</p>".into();
    }
    let height = ROW * rows.len() as f64 + 24.0;
    let mut svg = format!(
        r#"<svg class=chart width="{w}" height="{height}" viewBox="0 0 {w} {height}" role="img">"#,
        w = LABEL_W + BAR_W + 90.0
    );
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64 + 9.0;
        let _ = write!(
            svg,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{label}</text><line x1="{LABEL_W}" x2="{x2}" y1="{y}" y2="{y}" class=axis/>"#,
            lx = LABEL_W - 8.0,
            ty = y + 5.0,
            label = esc(label),
            x2 = LABEL_W + BAR_W,
        );
        for v in values {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{y}" r="4" class="dot b{}"/>"#,
                LABEL_W + v.clamp(0.0, 1.0) * BAR_W,
                i % 4
            );
        }
        if !values.is_empty() {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let x = LABEL_W + mean.clamp(0.0, 1.0) * BAR_W;
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{a}" y2="{b}" class=mean/><text x="{tx:.1}" y="{ty}">{mean:.2}</text>"#,
                a = y - 10.0,
                b = y + 10.0,
                tx = LABEL_W + BAR_W + 8.0,
                ty = y + 5.0,
            );
        }
    }
    let axis_y = ROW * rows.len() as f64 + 18.0;
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{axis_y}" text-anchor="middle" class=muted>{t}</text>"#,
            LABEL_W + t * BAR_W
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

const STYLE: &str = r#"
body{font:15px/1.5 system-ui,sans-serif;max-width:920px;margin:2em auto;padding:0 1em;color:#1d1d1f;background:#fff}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}td,th{padding:.3em .8em;border-bottom:1px solid #eee;text-align:left}
td{font-variant-numeric:tabular-nums}.muted{color:#777;font-size:.9em}
.chart text{font-size:12px;fill:#333}.bar.b0,.dot.b0{fill:#8a5a2b}.bar.b1,.dot.b1{fill:#2b6f8a}.bar.b2,.dot.b2{fill:#6b8a2b}.bar.b3,.dot.b3{fill:#8a2b5a}
.dot{opacity:.6}.axis{stroke:#ccc}.mean{stroke:#000;stroke-width:2}
.draft{border-left:3px solid #ddd;padding:.2em 1em;margin:1em 0;white-space:pre-wrap}
@media (prefers-color-scheme:dark){body{background:#1c1c1e;color:#eee}.chart text{fill:#ddd}td,th{border-color:#333}}
"#;

/// The report as a standalone HTML page.
pub fn html(s: &Summary) -> String {
    let mut out = String::new();
    let settings = s.settings.as_ref();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><meta charset=utf-8><title>Twin evaluation #{id}</title><style>{STYLE}</style><body><h1>Twin evaluation #{id}</h1><p class=muted>Status {status} · dataset {ds} · base {base} · judge {judge} · {n} held-out passages, {w} words. Every number below is computed from the run's stored measurements.</p>",
        id = s.run.id,
        status = s.run.status,
        ds = esc(&s.run.dataset_id[..12.min(s.run.dataset_id.len())]),
        base = esc(settings.map(|x| x.base_name.as_str()).unwrap_or("?")),
        judge = esc(settings.and_then(|x| x.judge_name.as_deref()).unwrap_or(
            if settings.is_some_and(|x| x.judge_note.is_some()) {
                "no independent judge"
            } else {
                "off"
            }
        )),
        n = s.heldout_examples,
        w = s.heldout_words,
    );

    out.push_str("<h2>Held-out perplexity</h2><p class=muted>llama.cpp's perplexity of the user's unseen writing (lower is better).</p>");
    out.push_str(&bar_chart(
        &s.perplexity
            .iter()
            .map(|p| (p.label.clone(), p.perplexity))
            .collect::<Vec<_>>(),
        &|v| format!("{v:.2}"),
    ));
    out.push_str(&table(
        &[
            "configuration",
            "examples",
            "tokens",
            "NLL / token",
            "perplexity",
        ],
        &s.perplexity
            .iter()
            .map(|p| {
                vec![
                    p.label.clone(),
                    p.examples.to_string(),
                    p.tokens.to_string(),
                    format!("{:.4}", p.nll),
                    format!("{:.3}", p.perplexity),
                ]
            })
            .collect::<Vec<_>>(),
    ));

    out.push_str("<h2>Style distance</h2><p class=muted>Drafts on held-out topics (held-out documents kept out of retrieval) against the user's held-out writing. Each component is divided by the distance of other people's writing, then averaged: 1.0 = as far from you as other writers, lower is closer.</p>");
    out.push_str(&bar_chart(
        &s.style
            .iter()
            .filter(|r| r.config != "heldout")
            .map(|r| (r.label.clone(), r.relative))
            .collect::<Vec<_>>(),
        &|v| format!("{v:.3}"),
    ));
    out.push_str(&table(
        &[
            "texts",
            "n",
            "words",
            "Burrows' Delta",
            "sentence length W1",
            "punctuation L1",
            "|ΔMATTR|",
            "mean sentence",
            "MATTR",
        ],
        &s.style
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.texts.to_string(),
                    r.words.to_string(),
                    format!("{:.3}", r.distance.delta),
                    format!("{:.2}", r.distance.sentence_length),
                    format!("{:.2}", r.distance.punctuation),
                    format!("{:.3}", r.distance.richness),
                    format!("{:.1}", r.mean_sentence_length),
                    format!("{:.3}", r.mattr),
                ]
            })
            .collect::<Vec<_>>(),
    ));

    out.push_str("<h2>Sounds like you</h2><p class=muted>Probability that a text is the user's, from a character n-gram classifier trained on the training split against reference writing by other people and the base model's own drafts on training requests. Held-out writing, unseen other writers and the base model's drafts on held-out topics show how well it separates.</p>");
    if let Some(a) = s.authorship_auc {
        let _ = write!(
            out,
            "<p>AUC, held-out writing vs the base model's drafts on held-out topics: <strong>{a:.2}</strong> (1 = always told apart, 0.5 = chance).</p>"
        );
    }
    out.push_str(&strip_chart(
        &s.authorship
            .iter()
            .map(|a| (a.label.clone(), a.values.clone()))
            .collect::<Vec<_>>(),
    ));

    out.push_str("<h2>Retrieval</h2><p class=muted>Queries back-translated from held-out passages; a hit is the passage's own document.</p>");
    out.push_str(&table(
        &[
            "retriever",
            "queries",
            "model-written",
            "recall@1",
            "recall@5",
            "recall@10",
            "MRR",
            "recall@5 (model-written)",
        ],
        &s.retrieval
            .iter()
            .map(|r| {
                let at = |k| {
                    r.recall_at
                        .get(&k)
                        .map_or("–".into(), |v| format!("{v:.3}"))
                };
                vec![
                    r.retriever.clone(),
                    r.queries.to_string(),
                    r.model_written.to_string(),
                    at(1),
                    at(5),
                    at(10),
                    format!("{:.3}", r.mrr),
                    r.model_written_recall_at_5
                        .map_or("–".into(), |v| format!("{v:.3}")),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    out.push_str(&bar_chart(
        &s.retrieval
            .iter()
            .map(|r| {
                (
                    format!("{} recall@5", r.retriever),
                    r.recall_at.get(&5).copied().unwrap_or(0.0),
                )
            })
            .collect::<Vec<_>>(),
        &|v| format!("{v:.2}"),
    ));

    out.push_str("<h2>Draft health</h2>");
    if s.health.is_empty() {
        out.push_str("<p class=muted>No drafts with health checks.</p>");
    } else {
        out.push_str("<p class=muted>A draft is publishable when it passes every hard check: no fragments, no loops, no run of over 12 words pasted from a source, no leftover markup or prompt text, the format's length and shape, on topic, and no names or numbers that appear nowhere in your writing or the request.</p>");
        out.push_str(&table(
            &["configuration", "drafts", "publishable", "failed checks"],
            &s.health
                .iter()
                .map(|h| {
                    vec![
                        h.label.clone(),
                        h.drafts.to_string(),
                        format!("{} ({:.0}%)", h.publishable, h.rate() * 100.0),
                        h.failed
                            .iter()
                            .map(|(n, k)| format!("{n} {k}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect::<Vec<_>>(),
        ));
    }

    out.push_str("<h2>Local judge</h2>");
    let judge_note = settings.and_then(|x| x.judge_note.as_deref());
    if let Some(note) = judge_note {
        let _ = write!(out, "<p class=muted>{}</p>", esc(note));
    }
    if s.judge.is_empty() {
        if judge_note.is_none() {
            out.push_str("<p class=muted>Not run.</p>");
        }
    } else {
        out.push_str("<p class=muted>Scores 1–3 from the judge model, prompt <code>judge</code> (versioned), output constrained by a grammar.</p>");
        out.push_str(&table(
            &[
                "configuration",
                "drafts",
                "accuracy",
                "style",
                "accuracy 1/2/3",
                "style 1/2/3",
            ],
            &s.judge
                .iter()
                .map(|j| {
                    let c = |x: [usize; 3]| format!("{} / {} / {}", x[0], x[1], x[2]);
                    vec![
                        j.label.clone(),
                        j.drafts.to_string(),
                        format!("{:.2}", j.accuracy),
                        format!("{:.2}", j.style),
                        c(j.accuracy_counts),
                        c(j.style_counts),
                    ]
                })
                .collect::<Vec<_>>(),
        ));
        out.push_str(&bar_chart(
            &s.judge
                .iter()
                .flat_map(|j| {
                    [
                        (format!("{} accuracy", j.label), j.accuracy),
                        (format!("{} style", j.label), j.style),
                    ]
                })
                .collect::<Vec<_>>(),
            &|v| format!("{v:.2}"),
        ));
    }

    out.push_str("<h2>Drafts</h2>");
    for d in &s.drafts {
        let _ = write!(
            out,
            "<h3>{topic}</h3><p class=muted>{config} · sounds like you {p} · judge {j}</p><div class=draft>{text}</div>",
            topic = esc(&d.topic),
            config = esc(&d.config),
            p = d.authorship.map_or("–".into(), |p| format!("{:.0}%", p * 100.0)),
            j = d.judge.map_or("–".into(), |(a, s)| format!("accuracy {a}, style {s}")),
            text = esc(&d.text),
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// One line of a comparison: a metric in both runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ComparedMetric {
    /// What is measured (`perplexity · base`…).
    pub metric: String,
    /// In the first run.
    pub a: Option<f64>,
    /// In the second run.
    pub b: Option<f64>,
}

/// The headline numbers of two runs side by side (metrics of either run, in order).
pub fn compare(a: &Summary, b: &Summary) -> Vec<ComparedMetric> {
    let ha = a.headline();
    let hb = b.headline();
    let mut metrics: Vec<String> = ha.iter().map(|(m, _)| m.clone()).collect();
    for (m, _) in &hb {
        if !metrics.contains(m) {
            metrics.push(m.clone());
        }
    }
    let get = |h: &[(String, f64)], m: &str| h.iter().find(|(k, _)| k == m).map(|(_, v)| *v);
    metrics
        .into_iter()
        .map(|m| ComparedMetric {
            a: get(&ha, &m),
            b: get(&hb, &m),
            metric: m,
        })
        .collect()
}

/// Load two runs and compare them.
pub fn compare_runs(
    store: &crate::store::Store,
    a: crate::store::EvalRunId,
    b: crate::store::EvalRunId,
) -> Result<Vec<ComparedMetric>, EvalError> {
    Ok(compare(
        &Summary::load(store, a)?,
        &Summary::load(store, b)?,
    ))
}

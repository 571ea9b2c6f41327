// The Evaluate screen: runs, a report rendered from stored measurements, and a comparison.
import { Channel } from "@tauri-apps/api/core";
import { api, errorText, type Progress, type Summary } from "../api";
import { $, el, loaders, showError } from "../dom";

/** Horizontal bars as inline SVG (no chart library: the CSP allows no remote code anyway). */
function bars(rows: [string, number][], digits = 2): Element {
  if (!rows.length) return el("span");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const max = Math.max(1e-9, ...rows.map((r) => r[1]));
  const h = rows.length * 26 + 8;
  svg.setAttribute("viewBox", `0 0 560 ${h}`);
  svg.setAttribute("class", "bars");
  rows.forEach(([label, value], i) => {
    const y = 4 + i * 26;
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", "190");
    t.setAttribute("y", String(y + 15));
    t.setAttribute("text-anchor", "end");
    t.textContent = label.length > 30 ? label.slice(0, 29) + "…" : label;
    const r = document.createElementNS(ns, "rect");
    const w = Math.max(1, (value / max) * 290);
    r.setAttribute("x", "198");
    r.setAttribute("y", String(y));
    r.setAttribute("width", String(w));
    r.setAttribute("height", "18");
    r.setAttribute("class", `b${i % 4}`);
    const v = document.createElementNS(ns, "text");
    v.setAttribute("x", String(204 + w));
    v.setAttribute("y", String(y + 15));
    v.textContent = value.toFixed(digits);
    svg.append(t, r, v);
  });
  return svg;
}

function tableOf(head: string[], rows: (string | number)[][]): HTMLElement {
  if (!rows.length) return el("p", "Not measured in this run.", "muted");
  const t = el("table") as HTMLTableElement;
  const tr = el("tr");
  head.forEach((h) => tr.append(el("th", h)));
  t.append(tr);
  for (const r of rows) {
    const row = el("tr");
    r.forEach((c) => row.append(el("td", String(c))));
    t.append(row);
  }
  return t;
}

function renderReport(s: Summary) {
  const box = $("eval-report");
  const parts: HTMLElement[] = [
    el("h2", `Evaluation #${s.run.id} · ${s.run.status}`),
    el("p", `${s.heldout_examples} held-out passages (${s.heldout_words} words). Every number is computed from the run's stored measurements.`, "muted"),
    el("h3", "Held-out perplexity (lower is better)"),
  ];
  const ppl = el("div");
  ppl.append(bars(s.perplexity.map((p) => [p.label, p.perplexity])));
  parts.push(ppl, el("h3", "Style distance to your writing (1.0 = as far as other writers)"));
  const style = el("div");
  style.append(bars(s.style.filter((r) => r.config !== "heldout").map((r) => [r.label, r.relative]), 3));
  parts.push(style);
  parts.push(
    tableOf(
      ["texts", "Delta", "sentence W1", "punctuation", "ΔMATTR"],
      s.style.map((r) => [r.label, r.distance.delta.toFixed(3), r.distance.sentence_length.toFixed(2), r.distance.punctuation.toFixed(2), r.distance.richness.toFixed(3)]),
    ),
    el("h3", "Sounds like you (mean probability)"),
  );
  const auth = el("div");
  auth.append(s.authorship.length ? bars(s.authorship.map((a) => [a.label, a.mean])) : el("p", "Not measured in this run.", "muted"));
  parts.push(auth, el("h3", "Retrieval"));
  parts.push(
    tableOf(
      ["retriever", "queries", "recall@1", "recall@5", "recall@10", "MRR"],
      s.retrieval.map((r) => [r.retriever, r.queries, r.recall_at["1"].toFixed(2), r.recall_at["5"].toFixed(2), r.recall_at["10"].toFixed(2), r.mrr.toFixed(3)]),
    ),
  );
  if (s.judge.length) {
    parts.push(
      el("h3", "Local judge (1–3)"),
      tableOf(["configuration", "drafts", "accuracy", "style"], s.judge.map((j) => [j.label, j.drafts, j.accuracy.toFixed(2), j.style.toFixed(2)])),
    );
  }
  if (s.drafts.length) parts.push(el("h3", "Drafts"));
  const list = el("ol", undefined, "results small");
  for (const d of s.drafts) {
    const li = el("li");
    const pct = d.authorship == null ? "–" : `${Math.round(d.authorship * 100)}%`;
    li.append(el("strong", d.topic), el("div", `${d.config} · sounds like you ${pct}`, "muted"), el("div", d.text, "snippet"));
    list.append(li);
  }
  parts.push(list);
  box.replaceChildren(...parts);
}

async function loadEvalRuns() {
  try {
    const runs = await api.evalRuns();
    $("eval-runs").replaceChildren(
      ...runs.map((r) => {
        const li = el("li");
        const b = el("button", `#${r.id} · ${r.status} · ${new Date(r.created_at * 1000).toLocaleString()}`, "link");
        b.addEventListener("click", async () => {
          try {
            renderReport(await api.evalReport(r.id));
          } catch (e) {
            showError("evaluate", e);
          }
        });
        li.append(b);
        return li;
      }),
    );
    for (const id of ["eval-a", "eval-b"]) {
      $(id).replaceChildren(...runs.map((r) => {
        const o = el("option", `#${r.id}`) as HTMLOptionElement;
        o.value = String(r.id);
        return o;
      }));
    }
    if (runs.length > 1) $<HTMLSelectElement>("eval-a").value = String(runs[1].id);
  } catch (e) {
    showError("evaluate", e);
  }
}

$("eval-start").addEventListener("click", async () => {
  const channel = new Channel<Progress>();
  const bar = $<HTMLProgressElement>("eval-bar");
  channel.onmessage = (m) => {
    if (m.kind !== "progress") return;
    bar.max = Math.max(1, m.progress.total);
    bar.value = m.progress.done;
    $("eval-label").textContent = `${m.progress.item ?? ""} ${m.progress.done}/${m.progress.total}`;
  };
  $("eval-progress").hidden = false;
  $<HTMLButtonElement>("eval-start").disabled = true;
  $<HTMLButtonElement>("eval-cancel").disabled = false;
  $("eval-state").textContent = "running…";
  try {
    const summary = await api.runEval(
      Number($<HTMLInputElement>("eval-drafts").value || 6),
      $<HTMLInputElement>("eval-judge").checked,
      channel,
    );
    renderReport(summary);
    $("eval-state").textContent = "done";
  } catch (e) {
    $("eval-state").textContent = errorText(e);
  } finally {
    $("eval-progress").hidden = true;
    $<HTMLButtonElement>("eval-start").disabled = false;
    $<HTMLButtonElement>("eval-cancel").disabled = true;
    loadEvalRuns();
  }
});
$("eval-cancel").addEventListener("click", () => api.cancel("eval"));
$("eval-compare-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const rows = await api.compareEvals(
      Number($<HTMLSelectElement>("eval-a").value),
      Number($<HTMLSelectElement>("eval-b").value),
    );
    const f = (v: number | null) => (v == null ? "–" : v.toFixed(3));
    const body = $("eval-compare").querySelector("tbody")!;
    body.replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      tr.append(el("td", r.metric), el("td", f(r.a)), el("td", f(r.b)));
      return tr;
    }));
  } catch (err) {
    showError("compare", err);
  }
});

loaders.evaluate = () => {
  loadEvalRuns();
};

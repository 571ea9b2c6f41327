// The Draft screen: a draft prepared while the topic is typed, streamed, with its sources, its
// health and how much it sounds like the user; history and the style card.
import { Channel } from "@tauri-apps/api/core";
import { api, errorText, type DraftArgs, type DraftOutcome, type DraftStream, type Format } from "../api";
import type { Citation } from "../bindings/Citation";
import type { Health } from "../bindings/Health";
import { $, el, loaders, setStatus, showError } from "../dom";

let lastDraft: DraftOutcome | null = null;
/** The buttons that act on a finished draft, off while one is being written. */
const DRAFT_BUTTONS = ["draft-go", "draft-regenerate", "draft-copy", "draft-export", "draft-final"];
let lastRequest: DraftArgs | null = null;

function renderCitations(citations: Citation[]) {
  const list = $("citations");
  list.replaceChildren(
    ...citations.map((c) => {
      const li = el("li");
      const b = el("button", `[${c.n}] ${c.title}`, "link");
      b.addEventListener("click", () => {
        const d = $("citation-detail");
        d.hidden = false;
        d.textContent = `${c.title}${c.heading_path ? " › " + c.heading_path : ""}\n${c.path}\n\n${c.snippet}`;
      });
      li.append(b);
      return li;
    }),
  );
}

function draftArgs(seed?: number) {
  return {
    topic: $<HTMLInputElement>("draft-topic").value.trim(),
    format: $<HTMLSelectElement>("draft-format").value as Format,
    strength: Number($<HTMLInputElement>("draft-strength").value),
    draft_only: $<HTMLInputElement>("draft-only").checked,
    seed: seed ?? null,
  };
}

// While the topic is typed, the backend gathers the sources and reads the prompt ahead
// (prepare_draft), so "Write" starts at the first word. A pause in typing starts it; a newer
// topic cancels the one in flight.
let prepareTimer: number | undefined;
let prepareSeq = 0;
let drafting = false;
function schedulePrepare() {
  window.clearTimeout(prepareTimer);
  const seq = ++prepareSeq;
  const ready = $("draft-ready");
  ready.textContent = "";
  ready.dataset.state = "idle";
  const args = draftArgs();
  if (args.topic.length < 12 || drafting) return;
  prepareTimer = window.setTimeout(async () => {
    ready.textContent = "Gathering sources…";
    ready.dataset.state = "preparing";
    try {
      const r = await api.prepareDraft(args);
      // A newer topic, format or strength has its own preparation.
      if (seq !== prepareSeq || drafting) return;
      ready.textContent = r.ready ? `Ready: ${r.sources} sources gathered` : "";
      ready.dataset.state = r.ready ? "ready" : "idle";
      // Another command took the library first: try again while the Draft screen is open.
      if (!r.ready && !$("screen-draft").hidden) schedulePrepare();
    } catch {
      // Drafting will report the problem; preparing is only a head start.
      if (seq !== prepareSeq) return;
      ready.textContent = "";
      ready.dataset.state = "idle";
    }
  }, 800);
}
$("draft-topic").addEventListener("input", schedulePrepare);
$("draft-format").addEventListener("change", schedulePrepare);
// The strength changes the prompt's evaluation (the adapter's weight), not the sources.
$("draft-strength").addEventListener("change", schedulePrepare);

/** Draft health: "Ready to post" or what stops it, check by check (draft::health). */
function renderHealth(health: Health | null) {
  const box = $("draft-health");
  if (!health) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.publishable = health.publishable ? "yes" : "no";
  const failed = health.checks.filter((c) => c.hard && !c.passed);
  const head = el("strong", health.publishable ? "Ready to post: every check passed" : `Needs an edit: ${failed.length} check${failed.length === 1 ? "" : "s"} failed`);
  const list = el("ul");
  for (const c of health.checks) {
    const li = el("li", `${c.passed ? "✓" : c.hard ? "✗" : "·"} ${c.name.replace("_", " ")}: ${c.detail}`);
    li.dataset.passed = c.passed ? "yes" : "no";
    list.append(li);
  }
  box.replaceChildren(head, list);
}

async function runDraft(seed?: number) {
  const args = draftArgs(seed);
  if (!args.topic) return;
  window.clearTimeout(prepareTimer);
  drafting = true;
  $("draft-ready").textContent = "";
  lastRequest = args;
  const out = $("draft-output");
  out.textContent = "";
  out.dataset.state = "running";
  $("citations").replaceChildren();
  $("draft-warnings").hidden = true;
  $("draft-health").hidden = true;
  for (const id of DRAFT_BUTTONS) $<HTMLButtonElement>(id).disabled = true;
  $<HTMLButtonElement>("draft-cancel").disabled = false;
  out.contentEditable = "false";
  $("draft-edited").textContent = "";
  lastDraft = null;
  // The draft streams as the model writes it. Once a text is shaped and checked, that text
  // (the preview) replaces the raw stream: a long text's parts so far, or the best post so
  // far. Planning, critique, revision and retries run under it, named in the step line; the
  // final text replaces the preview at the end.
  let preview = "";
  let streaming = false;
  const stepLine = $("draft-step");
  stepLine.textContent = "";
  const channel = new Channel<DraftStream>();
  channel.onmessage = (m) => {
    if (m.kind === "model") {
      const setup = m.setup;
      $("draft-meta").textContent = `${setup.model}${setup.adapter ? ` · voice ${setup.adapter} at ${setup.strength}` : " · base model"}`;
    } else if (m.kind === "draft") {
      const ev = m.event;
      if (ev.event === "step") {
        out.dataset.step = ev.name;
        // A post is streamed the first time; a second try writes under the checked one.
        streaming = ev.name === "section" || (ev.name === "draft" && !preview);
        if (streaming) out.textContent = preview ? `${preview}\n\n` : "";
        stepLine.textContent = stepStatus(ev.name, preview !== "");
      } else if (ev.event === "text") {
        if (streaming) {
          out.textContent += ev.text;
          out.dataset.streamed = "yes";
        }
      } else if (ev.event === "preview") {
        preview = ev.text;
        out.textContent = preview;
      } else if (ev.event === "context") {
        renderCitations(ev.citations);
      }
    }
  };
  try {
    const draft = await api.draft(args, channel);
    lastDraft = draft;
    stepLine.textContent = "";
    out.textContent = draft.text;
    // The draft is the user's to edit now; using the edited text teaches Twin (recordFinal).
    out.contentEditable = "true";
    renderCitations(draft.citations);
    out.dataset.state = "done";
    if (draft.warnings?.length) {
      const w = $("draft-warnings");
      w.hidden = false;
      w.replaceChildren(...draft.warnings.map((x: string) => el("div", x)));
    }
    renderHealth(draft.health);
    const first = draft.timings.first_token_ms;
    const firstText = first < 1000 ? `${Math.round(first)} ms` : `${(first / 1000).toFixed(1)} s`;
    $("draft-meta").textContent += ` · ${draft.words} words · first word after ${firstText}`;
    out.dataset.prepared = draft.timings.prepared_ahead_ms > 0 ? "yes" : "no";
    const likeness = $("draft-likeness");
    likeness.hidden = draft.sounds_like_you == null;
    if (draft.sounds_like_you != null) {
      const pct = Math.round(draft.sounds_like_you * 100);
      likeness.textContent = `Sounds like you: ${pct}%`;
      likeness.dataset.level = pct >= 70 ? "high" : pct >= 40 ? "mid" : "low";
    }
    loadHistory();
  } catch (e) {
    stepLine.textContent = "";
    out.dataset.state = "error";
    out.textContent = errorText(e);
  } finally {
    drafting = false;
    for (const id of DRAFT_BUTTONS) $<HTMLButtonElement>(id).disabled = false;
    $<HTMLButtonElement>("draft-cancel").disabled = true;
  }
}

/** What the step line says while a chain step runs (`again`: a text was already checked). */
function stepStatus(step: string, again: boolean): string {
  switch (step) {
    case "self_query":
    case "expand":
    case "retrieve":
      return "Finding your writing on the topic…";
    case "outline":
      return "Planning the points…";
    case "draft":
      return again ? "Writing another version…" : "Writing…";
    case "section":
      return "Writing the next part…";
    case "critique":
      return "Reading it over…";
    case "revise":
      return "Revising…";
    default:
      return "";
  }
}

$("draft-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runDraft();
});
$("draft-regenerate").addEventListener("click", () => runDraft(Math.floor(Math.random() * 1e9)));
$("draft-cancel").addEventListener("click", () => api.cancel("draft"));
$("draft-strength").addEventListener("input", () => {
  $("strength-value").textContent = Number($<HTMLInputElement>("draft-strength").value).toFixed(1);
});
/** The draft as the user left it: the output is editable once a draft is done. */
function currentText(): string {
  return $("draft-output").innerText.trim();
}

/**
 * When the user uses a draft they edited (copy, export, "Mark as final"), the pair of the
 * model's text and theirs is kept: what Twin learns from (`twin drafts` lists them).
 */
async function recordFinal(): Promise<void> {
  if (!lastDraft) return;
  try {
    const edit = await api.recordFinal(lastDraft.trace_id, currentText());
    $("draft-edited").textContent = edit
      ? `Your edit is kept (${Math.round(edit.changed * 100)}% of the words changed): Twin learns from it.`
      : "";
  } catch (e) {
    showError("edit", e);
  }
}

$("draft-copy").addEventListener("click", async () => {
  await navigator.clipboard.writeText(currentText());
  setStatus("copied");
  await recordFinal();
});
$("draft-export").addEventListener("click", async () => {
  if (!lastDraft || !lastRequest) return;
  const [path] = await api.pick("save");
  if (!path) return;
  try {
    await api.exportMarkdown(path, lastRequest.topic, lastRequest.format, currentText());
    setStatus(`saved ${path}`);
    await recordFinal();
  } catch (e) {
    showError("export", e);
  }
});
$("draft-final").addEventListener("click", async () => {
  await recordFinal();
  if (!$("draft-edited").textContent) setStatus("kept as written: nothing changed to learn from");
});

async function loadHistory() {
  try {
    const items = await api.draftHistory(20);
    $("history").replaceChildren(
      ...items.map((t) => {
        const li = el("li");
        const b = el("button", `${t.format}: ${t.topic}`, "link");
        b.addEventListener("click", () => {
          // A past draft is shown, not edited: an edit belongs to the draft just written.
          lastDraft = null;
          $("draft-output").contentEditable = "false";
          $("draft-edited").textContent = "";
          $("draft-output").textContent = t.output;
          $("draft-meta").textContent = `${t.model}${t.adapter ? " · " + t.adapter : ""} · ${t.status}`;
        });
        li.append(b);
        return li;
      }),
    );
  } catch (e) {
    showError("history", e);
  }
}

async function loadStyle() {
  try {
    const card = await api.styleCard();
    $<HTMLTextAreaElement>("style-card").value = card.text;
    $("style-state").textContent = card.edited ? "edited by you" : "computed from your writing";
  } catch (e) {
    showError("style", e);
  }
}
$("style-save").addEventListener("click", async () => {
  await api.setStyleCard($<HTMLTextAreaElement>("style-card").value);
  loadStyle();
});
$("style-reset").addEventListener("click", async () => {
  await api.setStyleCard(null);
  loadStyle();
});

loaders.draft = () => {
  loadHistory();
  loadStyle();
};

// Ideas: the user's themes, each idea one click from a draft.
$("ideas-go").addEventListener("click", async () => {
  const state = $("ideas-state");
  state.textContent = "reading your themes…";
  try {
    const found = await api.ideas(8);
    $("ideas").replaceChildren(
      ...found.ideas.map((idea) => {
        const li = el("li");
        const b = el("button", idea.topic, "link");
        b.title = "Write this";
        b.addEventListener("click", () => {
          $<HTMLInputElement>("draft-topic").value = idea.topic;
          $<HTMLFormElement>("draft-form").requestSubmit();
        });
        const from = idea.citations.map((c) => c.title).join("; ");
        li.append(b, el("div", idea.why, "muted"), el("div", `from: ${from}`, "muted"));
        return li;
      }),
    );
    state.textContent = `${found.themes.length} themes`;
  } catch (e) {
    state.textContent = "";
    showError("ideas", e);
  }
});

// Twin's front end: four screens over the app's Tauri commands. No business logic: every
// decision is made in twin-core; this file renders what the commands return and streams.
import { invoke, Channel } from "@tauri-apps/api/core";
import { getCurrentWebview } from "@tauri-apps/api/webview";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function setStatus(text: string) {
  $("status").textContent = text;
}

/** What a command's error says: the core sends `{kind, message, path?}`. */
function errorText(e: unknown): string {
  return typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e);
}

/** Whether a command ended because the user cancelled it (decided by the core, not by words). */
function isCancelled(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { kind?: unknown }).kind === "cancelled";
}

function showError(where: string, e: unknown) {
  setStatus(`${where}: ${errorText(e)}`);
}

/** A channel whose progress events move the `<progress>` element `barId`. */
function barChannel(barId: string): Channel<Json> {
  const bar = $<HTMLProgressElement>(barId);
  const channel = new Channel<Json>();
  channel.onmessage = (m) => {
    if (m.kind !== "progress") return;
    bar.max = Math.max(1, m.progress.total);
    bar.value = m.progress.done;
  };
  return channel;
}

// ---- navigation ------------------------------------------------------------------------------

const screens = ["library", "draft", "train", "evaluate", "settings"];
const loaders: Record<string, () => void> = {};

function show(screen: string) {
  for (const s of screens) {
    $(`screen-${s}`).hidden = s !== screen;
    document.querySelector(`nav [data-screen="${s}"]`)?.setAttribute("aria-selected", String(s === screen));
  }
  loaders[screen]?.();
}

document.querySelectorAll<HTMLButtonElement>("nav button").forEach((b) =>
  b.addEventListener("click", () => show(b.dataset.screen!)),
);
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key >= "1" && e.key <= "5") {
    e.preventDefault();
    show(screens[Number(e.key) - 1]);
  }
});

// ---- library ---------------------------------------------------------------------------------

async function refreshInfo() {
  try {
    const info: Json = await invoke("app_info");
    const s = info.stats;
    setStatus(`${s.documents} documents · ${s.chunks} chunks · ${info.chat_model ?? "no chat model"}`);
  } catch (e) {
    showError("library", e);
  }
}

async function refreshSources() {
  const body = $("sources").querySelector("tbody")!;
  try {
    const sources: Json[] = await invoke("list_sources");
    body.replaceChildren(
      ...sources.map((s) => {
        const tr = el("tr");
        const where = el("td");
        where.append(el("div", s.path, "path"));
        // A platform export's breakdown: "linkedin: 12 posts, 3 articles".
        const exported = (s.by_platform as Json[]).filter((p) => p.platform !== "files");
        if (exported.length) {
          const per = new Map<string, string[]>();
          for (const p of exported) {
            const list = per.get(p.platform) ?? [];
            list.push(`${p.documents} ${p.kind}${p.documents === 1 ? "" : "s"}`);
            per.set(p.platform, list);
          }
          const text = [...per].map(([platform, kinds]) => `${platform}: ${kinds.join(", ")}`).join(" · ");
          where.append(el("div", text, "muted small platform-counts"));
        }
        tr.append(where, el("td", String(s.documents)), el("td", String(s.chunks)));
        const status = s.pending_chunks > 0 ? `${s.pending_chunks} to embed` : s.watched ? "watched" : "imported";
        tr.append(el("td", status));
        return tr;
      }),
    );
  } catch (e) {
    showError("sources", e);
  }
}

/** Ask the shell for a native dialog; what the user picks is the only thing commands may name. */
async function pick(what: "files" | "folder" | "model" | "save"): Promise<string[]> {
  return await invoke("pick_paths", { what });
}

/** Import paths: what the drop handler, the file picker and the tests call. */
async function importPaths(paths: string[]): Promise<Json> {
  const box = $("import-progress");
  box.hidden = false;
  box.dataset.state = "running";
  $("import-issues").hidden = true;
  const bar = $<HTMLProgressElement>("import-bar");
  const channel = new Channel<Json>();
  channel.onmessage = (m) => {
    if (m.kind !== "progress") return;
    const p = m.progress;
    bar.max = Math.max(1, p.total);
    bar.value = p.done;
    $("import-label").textContent = `${p.stage}: ${p.done}/${p.total}${p.item ? " · " + p.item.split("/").pop() : ""}`;
  };
  try {
    const report: Json = await invoke("import_paths", { paths, onEvent: channel });
    const issues = [...(report.skipped ?? []), ...(report.failed ?? [])];
    $("import-label").textContent =
      `${report.added} added, ${report.updated} updated, ${report.unchanged} unchanged, ${report.chunks_embedded} chunks embedded`;
    if (issues.length) {
      const list = $("import-issues");
      list.hidden = false;
      list.replaceChildren(el("strong", `${issues.length} files not imported:`), ...issues.map((i: Json) => el("div", `${i.path}: ${i.reason}`)));
    }
    box.dataset.state = "done";
    (window as Json).twinLastImport = report;
    await Promise.all([refreshSources(), refreshInfo(), refreshTrainOffer()]);
    return report;
  } catch (e) {
    box.dataset.state = "error";
    $("import-label").textContent = errorText(e);
    throw e;
  }
}
(window as Json).twinImport = importPaths;

getCurrentWebview().onDragDropEvent((event) => {
  const zone = $("drop-zone");
  if (event.payload.type === "over" || event.payload.type === "enter") zone.classList.add("over");
  else zone.classList.remove("over");
  if (event.payload.type === "drop" && event.payload.paths.length) {
    show("library");
    importPaths(event.payload.paths).catch(() => {});
  }
});

$("pick-files").addEventListener("click", async () => {
  const picked = await pick("files");
  if (picked.length) importPaths(picked).catch(() => {});
});
$("watch-folder").addEventListener("click", async () => {
  const [folder] = await pick("folder");
  if (folder) watchFolder(folder).catch(() => {});
});

/** Watch a folder the user picked (what the button and the tests call). */
async function watchFolder(folder: string): Promise<void> {
  const channel = new Channel<Json>();
  $("import-progress").hidden = false;
  channel.onmessage = (m) => {
    if (m.kind === "progress") $("import-label").textContent = `${m.progress.stage}: ${m.progress.done}/${m.progress.total}`;
  };
  try {
    await invoke("watch_folder", { path: folder, onEvent: channel });
    $("import-label").textContent = `watching ${folder}`;
    await refreshSources();
  } catch (e) {
    showError("watch", e);
    throw e;
  }
}
(window as Json).twinWatch = watchFolder;
$("import-cancel").addEventListener("click", () => invoke("cancel_job", { job: "import" }));

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $<HTMLInputElement>("search-input").value.trim();
  if (!text) return;
  const list = $("search-results");
  list.dataset.state = "searching";
  try {
    const results: Json[] = await invoke("search", { text, limit: 10 });
    list.replaceChildren(
      ...results.map((r) => {
        const li = el("li");
        li.append(el("div", `${r.title}${r.heading_path ? " › " + r.heading_path : ""}`, "title"), el("div", r.snippet, "muted"));
        return li;
      }),
    );
    list.dataset.state = "done";
  } catch (err) {
    list.dataset.state = "error";
    showError("search", err);
  }
});

loaders.library = () => {
  refreshSources();
  refreshInfo();
};

// ---- draft -----------------------------------------------------------------------------------

let lastDraft: Json = null;
let lastRequest: Json = null;

function renderCitations(citations: Json[]) {
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
    format: $<HTMLSelectElement>("draft-format").value,
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
      const r: Json = await invoke("prepare_draft", { args });
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
function renderHealth(health: Json) {
  const box = $("draft-health");
  if (!health) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.publishable = health.publishable ? "yes" : "no";
  const failed = health.checks.filter((c: Json) => c.hard && !c.passed);
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
  for (const id of ["draft-go", "draft-regenerate", "draft-copy", "draft-export"]) $<HTMLButtonElement>(id).disabled = true;
  $<HTMLButtonElement>("draft-cancel").disabled = false;
  // The stream shows the step being written; the final text replaces it at the end.
  let step = "";
  const channel = new Channel<Json>();
  channel.onmessage = (m) => {
    if (m.kind === "model") {
      const setup = m.setup;
      $("draft-meta").textContent = `${setup.model}${setup.adapter ? ` · voice ${setup.adapter} at ${setup.strength}` : " · base model"}`;
    } else if (m.kind === "draft") {
      const ev = m.event;
      if (ev.event === "step") {
        step = ev.name;
        if (["outline", "draft", "revise", "section", "critique"].includes(step)) {
          out.textContent = "";
          out.dataset.step = step;
        }
      } else if (ev.event === "text") {
        if (["draft", "revise", "section", "outline", "critique"].includes(ev.step)) out.textContent += ev.text;
        out.dataset.streamed = "yes";
      } else if (ev.event === "context") {
        renderCitations(ev.citations);
      }
    }
  };
  try {
    const draft: Json = await invoke("draft", { args, onEvent: channel });
    lastDraft = draft;
    out.textContent = draft.text;
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
    out.dataset.state = "error";
    out.textContent = errorText(e);
  } finally {
    drafting = false;
    for (const id of ["draft-go", "draft-regenerate", "draft-copy", "draft-export"]) $<HTMLButtonElement>(id).disabled = false;
    $<HTMLButtonElement>("draft-cancel").disabled = true;
  }
}

$("draft-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runDraft();
});
$("draft-regenerate").addEventListener("click", () => runDraft(Math.floor(Math.random() * 1e9)));
$("draft-cancel").addEventListener("click", () => invoke("cancel_job", { job: "draft" }));
$("draft-strength").addEventListener("input", () => {
  $("strength-value").textContent = Number($<HTMLInputElement>("draft-strength").value).toFixed(1);
});
$("draft-copy").addEventListener("click", async () => {
  await navigator.clipboard.writeText($("draft-output").textContent ?? "");
  setStatus("copied");
});
$("draft-export").addEventListener("click", async () => {
  if (!lastDraft || !lastRequest) return;
  const [path] = await pick("save");
  if (!path) return;
  try {
    await invoke("export_markdown", { path, topic: lastRequest.topic, format: lastRequest.format, text: lastDraft.text });
    setStatus(`saved ${path}`);
  } catch (e) {
    showError("export", e);
  }
});

async function loadHistory() {
  try {
    const items: Json[] = await invoke("draft_history", { limit: 20 });
    $("history").replaceChildren(
      ...items.map((t) => {
        const li = el("li");
        const b = el("button", `${t.format}: ${t.topic}`, "link");
        b.addEventListener("click", () => {
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
    const card: Json = await invoke("style_card");
    $<HTMLTextAreaElement>("style-card").value = card.text;
    $("style-state").textContent = card.edited ? "edited by you" : "computed from your writing";
  } catch (e) {
    showError("style", e);
  }
}
$("style-save").addEventListener("click", async () => {
  await invoke("set_style_card", { text: $<HTMLTextAreaElement>("style-card").value });
  loadStyle();
});
$("style-reset").addEventListener("click", async () => {
  await invoke("set_style_card", { text: null });
  loadStyle();
});

loaders.draft = () => {
  loadHistory();
  loadStyle();
};

// ---- train -----------------------------------------------------------------------------------

const curve: { train: [number, number][]; eval: [number, number][] } = { train: [], eval: [] };

function drawChart() {
  const svg = $("loss-chart");
  const all = [...curve.train, ...curve.eval];
  if (!all.length) return svg.replaceChildren();
  const maxX = Math.max(...all.map((p) => p[0]), 1);
  const ys = all.map((p) => p[1]);
  const [minY, maxY] = [Math.min(...ys), Math.max(...ys)];
  const x = (v: number) => 10 + (380 * v) / maxX;
  const y = (v: number) => 170 - (160 * (v - minY)) / Math.max(maxY - minY, 1e-6);
  const line = (pts: [number, number][], cls: string) => {
    const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    p.setAttribute("points", pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" "));
    p.setAttribute("class", cls);
    return p;
  };
  svg.replaceChildren(line(curve.train, "train"), line(curve.eval, "eval"));
}

/** Format keys as the rest of the app names them. */
const FORMAT_NAMES: Record<string, string> = {
  linkedin: "LinkedIn post",
  thread: "X thread",
  article: "Blog article",
  newsletter: "Newsletter",
};

async function loadDataset() {
  try {
    const d: Json = await invoke("dataset_summary");
    if (!d) return;
    const s = d.record.stats;
    $("dataset-summary").textContent =
      `Dataset ${d.record.id}: ${s.train_user} of your passages + ${s.train_replay} replay for training, ${s.test_user} held out (${s.test_documents} documents); ${s.train_words} words.`;
    $("dataset-examples").replaceChildren(
      ...d.examples.map((e: Json) => {
        const li = el("li");
        // The request the passage answers, stored with the example as [format, topic].
        const [format, topic] = e.request ?? [];
        const title = topic ? `${FORMAT_NAMES[format] ?? format}: ${topic}` : "(no request)";
        li.append(el("div", title, "title"), el("div", e.reply.slice(0, 220) + "…", "muted"));
        return li;
      }),
    );
  } catch (e) {
    showError("dataset", e);
  }
}

async function loadAdapters() {
  try {
    const a: Json = await invoke("list_adapters");
    const body = $("adapters").querySelector("tbody")!;
    body.replaceChildren(
      ...a.adapters.map((x: Json) => {
        const tr = el("tr");
        const used = a.active.filter((c: Json) => c.adapter?.id === x.id).map((c: Json) => `${c.channel}@${c.scale}`);
        const m = x.metrics;
        tr.append(
          el("td", x.name),
          el("td", `${Number(m.base_eval_loss).toFixed(3)} → ${Number(m.best_eval_loss).toFixed(3)}`),
          el("td", used.join(", ") || "—"),
        );
        const td = el("td");
        const b = el("button", "Use");
        b.addEventListener("click", async () => {
          await invoke("use_adapter", { id: x.id, strength: 1.0, channel: null });
          loadAdapters();
        });
        td.append(b);
        tr.append(td);
        return tr;
      }),
    );
  } catch (e) {
    showError("adapters", e);
  }
}

/** Build the training set from the user's writing; true when it was built. */
async function buildDataset(): Promise<boolean> {
  const box = $("dataset-progress");
  const summary = $("dataset-summary");
  box.hidden = false;
  summary.dataset.state = "running";
  let ok = false;
  try {
    await invoke("build_dataset", { onEvent: barChannel("dataset-bar") });
    await loadDataset();
    summary.dataset.state = "done";
    ok = true;
  } catch (e) {
    showError("dataset", e);
    summary.dataset.state = "error";
  }
  box.hidden = true;
  return ok;
}
$("dataset-build").addEventListener("click", () => buildDataset());
/** The Train screen's choices; empty fields keep the engine's defaults. */
function trainOptions(): Json {
  const num = (id: string) => {
    const v = $<HTMLInputElement>(id).valueAsNumber;
    return Number.isFinite(v) && v > 0 ? v : null;
  };
  return { epochs: num("train-epochs"), maxSteps: num("train-steps"), rank: num("train-rank") };
}
$("train-plan").addEventListener("click", async () => {
  const pre = $("plan");
  pre.hidden = false;
  pre.textContent = "measuring this machine…";
  try {
    const p: Json = await invoke("train_plan", { options: trainOptions() });
    pre.textContent =
      `${p.train_examples} training examples, ${p.test_examples} held out\n${p.tokens_per_epoch} tokens per epoch, ${p.steps} steps\n` +
      `about ${(p.memory_bytes / 2 ** 30).toFixed(1)} GiB of memory, about ${Math.round((p.eta_seconds ?? 0) / 60)} min`;
  } catch (e) {
    pre.textContent = errorText(e);
  }
});
$("train-start").addEventListener("click", () => startTraining());
/** Train a voice adapter with the Train screen's choices, the loss chart live. */
async function startTraining() {
  curve.train = [];
  curve.eval = [];
  const state = $("train-state");
  state.dataset.state = "running";
  $<HTMLButtonElement>("train-start").disabled = true;
  $<HTMLButtonElement>("train-cancel").disabled = false;
  const channel = new Channel<Json>();
  channel.onmessage = (m) => {
    if (m.kind !== "train") return;
    const e = m.event;
    if (e.event === "step") {
      curve.train.push([e.step, e.loss]);
      $("train-state").textContent = `step ${e.step}/${e.total_steps} · loss ${e.loss.toFixed(3)} · ${Math.round(e.tokens_per_second)} tok/s · ${Math.round(e.eta_seconds)} s left`;
    } else if (e.event === "eval") {
      curve.eval.push([e.step, e.loss]);
    }
    drawChart();
  };
  try {
    const o: Json = await invoke("start_training", { options: trainOptions(), onEvent: channel });
    state.textContent = `${o.adapter.name}: held-out loss ${o.base_eval_loss.toFixed(3)} → ${o.best_eval_loss.toFixed(3)}`;
    state.dataset.state = "done";
  } catch (e) {
    state.textContent = errorText(e);
    state.dataset.state = isCancelled(e) ? "cancelled" : "error";
  }
  $<HTMLButtonElement>("train-start").disabled = false;
  $<HTMLButtonElement>("train-cancel").disabled = true;
  loadAdapters();
  refreshTrainOffer();
}

/**
 * First run: once the library holds writing and no voice adapter exists, offer to train one
 * (the twin is the fine-tuned model). The offer runs the Train screen's own steps.
 */
async function refreshTrainOffer() {
  try {
    const [a, info]: [Json, Json] = await Promise.all([invoke("list_adapters"), invoke("app_info")]);
    $("train-offer").hidden = a.adapters.length > 0 || !(info.stats.documents > 0);
  } catch {
    $("train-offer").hidden = true;
  }
}
$("train-offer-go").addEventListener("click", async () => {
  $("train-offer").hidden = true;
  show("train");
  if (await buildDataset()) await startTraining();
  else refreshTrainOffer();
});
$("train-cancel").addEventListener("click", () => invoke("cancel_job", { job: "train" }));
$("adapter-rollback").addEventListener("click", async () => {
  await invoke("rollback_adapter", { channel: null });
  loadAdapters();
});

loaders.train = () => {
  loadDataset();
  loadAdapters();
};

// ---- settings --------------------------------------------------------------------------------

async function loadModels() {
  try {
    const m: Json = await invoke("list_models");
    const body = $("models").querySelector("tbody")!;
    body.replaceChildren(
      ...m.registered.map((r: Json) => {
        const tr = el("tr");
        tr.append(el("td", r.name), el("td", r.kind), el("td", r.origin));
        const td = el("td");
        // Chat models and rerankers have one active model each; embedding models belong to
        // the library (changing one re-embeds everything), so they are not switched here.
        const active = r.kind === "chat" ? m.active_chat : r.kind === "reranker" ? m.active_reranker : undefined;
        if (r.kind === "chat" || r.kind === "reranker") {
          if (r.id === active) td.textContent = "in use";
          else {
            const b = el("button", "Use");
            b.addEventListener("click", async () => {
              await invoke("use_model", { id: r.id });
              loadModels();
            });
            td.append(b);
          }
        }
        tr.append(td);
        return tr;
      }),
    );
    $("discovered").replaceChildren(
      ...(m.discovered.length
        ? m.discovered.map((d: Json) => {
            const li = el("li", `${d.name} (${d.origin}) `);
            const b = el("button", "Use in place", "link");
            b.addEventListener("click", async () => {
              await invoke("add_model", { path: d.path, origin: d.origin });
              loadModels();
            });
            li.append(b);
            return li;
          })
        : [el("li", "No Ollama or LM Studio models found.", "muted")]),
    );
  } catch (e) {
    showError("models", e);
  }
}

async function loadSettings() {
  try {
    const s: Json = await invoke("settings");
    $<HTMLInputElement>("set-author").value = s.author;
    $<HTMLInputElement>("set-threads").value = String(s.threads);
    $<HTMLInputElement>("set-gpu").value = s.gpu_layers ?? "";
    $<HTMLInputElement>("set-data").value = s.data_dir;
  } catch (e) {
    showError("settings", e);
  }
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

/** One model in the catalog, as `recommended_models` judges it against this computer. */
function recommendedRow(r: Json): HTMLElement {
  const tr = el("tr");
  if (r.pick) tr.className = "pick";
  const name = el("td");
  name.append(el("strong", (r.pick ? "★ " : "") + r.entry.name), el("div", r.entry.about, "muted small"));
  const runs = r.placement.kind === "gpu" ? "GPU" : r.placement.kind === "cpu" ? "CPU" : "too large";
  const t = r.training;
  const train =
    t.kind === "yes"
      ? t.cpu_minutes_per_10k_words != null
        ? `yes, ~${Math.round(t.cpu_minutes_per_10k_words)} min per 10k words`
        : "yes, on the GPU"
      : t.kind === "needs_memory"
        ? `needs ${gb(t.bytes)}`
        : `no (${r.entry.architecture})`;
  tr.append(
    name,
    el("td", gb(r.entry.size_mb * 1e6)),
    el("td", gb(r.draft_bytes)),
    el("td", runs),
    el("td", train),
    el("td", r.entry.licence),
  );
  const act = el("td");
  if (r.installed) act.textContent = "installed";
  else if (r.placement.kind !== "too_big") {
    const b = el("button", "Download");
    b.addEventListener("click", () => pullModel(r.entry.repo, r.entry.file));
    act.append(b);
  }
  tr.append(act);
  return tr;
}

async function loadRecommended() {
  try {
    const rec: Json = await invoke("recommended_models");
    const m = rec.machine;
    const gpu = m.gpu ? `${m.gpu[0]}, ${gb(m.gpu[1])}` : "no GPU this build can use";
    $("recommended-machine").textContent =
      `This computer: ${gb(m.ram_bytes)} RAM, ${m.cpu_threads} CPU threads, ${gpu}. ` +
      `Catalog v${rec.catalog_version}, reviewed ${rec.reviewed}; memory figures are estimates.`;
    const all = $<HTMLInputElement>("recommended-all").checked;
    $("recommended")
      .querySelector("tbody")!
      .replaceChildren(...rec.models.filter((r: Json) => all || r.placement.kind !== "too_big").map(recommendedRow));
  } catch (e) {
    showError("recommended models", e);
  }
}
$("recommended-all").addEventListener("change", loadRecommended);

/** Download with progress, register, then refresh both model lists. */
async function pullModel(repo: string, file: string) {
  const box = $("pull-progress");
  box.hidden = false;
  try {
    await invoke("pull_model", { repo, file, onEvent: barChannel("pull-bar") });
    loadModels();
    loadRecommended();
  } catch (err) {
    showError("download", err);
  }
  box.hidden = true;
}

$("model-add").addEventListener("click", async () => {
  const [file] = await pick("model");
  if (!file) return;
  try {
    await invoke("add_model", { path: file, origin: null });
    loadModels();
  } catch (e) {
    showError("add model", e);
  }
});
$("pull-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const repo = $<HTMLInputElement>("pull-repo").value.trim();
  const file = $<HTMLInputElement>("pull-file").value.trim();
  if (!repo || !file) return;
  await pullModel(repo, file);
});
$("settings-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const gpu = $<HTMLInputElement>("set-gpu").value.trim();
  try {
    await invoke("save_settings", {
      settings: {
        author: $<HTMLInputElement>("set-author").value,
        threads: Number($<HTMLInputElement>("set-threads").value || 0),
        gpu_layers: gpu === "" ? null : Number(gpu),
        data_dir: $<HTMLInputElement>("set-data").value,
      },
    });
    $("settings-state").textContent = "saved";
  } catch (err) {
    showError("settings", err);
  }
});

// ---- evaluate --------------------------------------------------------------------------------

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

function renderReport(s: Json) {
  const box = $("eval-report");
  const parts: HTMLElement[] = [
    el("h2", `Evaluation #${s.run.id} · ${s.run.status}`),
    el("p", `${s.heldout_examples} held-out passages (${s.heldout_words} words). Every number is computed from the run's stored measurements.`, "muted"),
    el("h3", "Held-out perplexity (lower is better)"),
  ];
  const ppl = el("div");
  ppl.append(bars(s.perplexity.map((p: Json) => [p.label, p.perplexity])));
  parts.push(ppl, el("h3", "Style distance to your writing (1.0 = as far as other writers)"));
  const style = el("div");
  style.append(bars(s.style.filter((r: Json) => r.config !== "heldout").map((r: Json) => [r.label, r.relative]), 3));
  parts.push(style);
  parts.push(
    tableOf(
      ["texts", "Delta", "sentence W1", "punctuation", "ΔMATTR"],
      s.style.map((r: Json) => [r.label, r.distance.delta.toFixed(3), r.distance.sentence_length.toFixed(2), r.distance.punctuation.toFixed(2), r.distance.richness.toFixed(3)]),
    ),
    el("h3", "Sounds like you (mean probability)"),
  );
  const auth = el("div");
  auth.append(s.authorship.length ? bars(s.authorship.map((a: Json) => [a.label, a.mean])) : el("p", "Not measured in this run.", "muted"));
  parts.push(auth, el("h3", "Retrieval"));
  parts.push(
    tableOf(
      ["retriever", "queries", "recall@1", "recall@5", "recall@10", "MRR"],
      s.retrieval.map((r: Json) => [r.retriever, r.queries, r.recall_at["1"].toFixed(2), r.recall_at["5"].toFixed(2), r.recall_at["10"].toFixed(2), r.mrr.toFixed(3)]),
    ),
  );
  if (s.judge.length) {
    parts.push(
      el("h3", "Local judge (1–3)"),
      tableOf(["configuration", "drafts", "accuracy", "style"], s.judge.map((j: Json) => [j.label, j.drafts, j.accuracy.toFixed(2), j.style.toFixed(2)])),
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
    const runs: Json[] = await invoke("eval_runs");
    $("eval-runs").replaceChildren(
      ...runs.map((r) => {
        const li = el("li");
        const b = el("button", `#${r.id} · ${r.status} · ${new Date(r.created_at * 1000).toLocaleString()}`, "link");
        b.addEventListener("click", async () => {
          try {
            renderReport(await invoke("eval_report", { id: r.id }));
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
  const channel = new Channel<Json>();
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
    const summary = await invoke("run_eval", {
      drafts: Number($<HTMLInputElement>("eval-drafts").value || 6),
      judge: $<HTMLInputElement>("eval-judge").checked,
      onEvent: channel,
    });
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
$("eval-cancel").addEventListener("click", () => invoke("cancel_job", { job: "eval" }));
$("eval-compare-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const rows: Json[] = await invoke("compare_evals", {
      a: Number($<HTMLSelectElement>("eval-a").value),
      b: Number($<HTMLSelectElement>("eval-b").value),
    });
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

loaders.settings = () => {
  loadModels();
  loadRecommended();
  loadSettings();
};

show("library");
refreshTrainOffer();
document.body.dataset.ready = "yes";
// Files Twin was opened with ("Open with", `twin-app FILE…`) are imported as if dropped.
invoke<string[]>("launch_paths").then((paths) => {
  if (paths.length) importPaths(paths).catch(() => {});
});

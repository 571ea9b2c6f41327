// The Library screen: sources, imports (drop, pick, watch, "Open with") and search.
import { Channel } from "@tauri-apps/api/core";
import { getCurrentWebview } from "@tauri-apps/api/webview";
import { api, errorText, type ImportReport, type Progress } from "../api";
import { $, el, loaders, setStatus, show, showError } from "../dom";
import { refreshTrainOffer } from "./train";

/** What the end-to-end test calls and reads on `window` (tests/app_e2e.rs). */
const testHooks = window as unknown as {
  twinImport: (paths: string[]) => Promise<ImportReport>;
  twinWatch: (folder: string) => Promise<void>;
  twinLastImport: ImportReport;
};

async function refreshInfo() {
  try {
    const info = await api.appInfo();
    const s = info.stats;
    setStatus(`${s.documents} documents · ${s.chunks} chunks · ${info.chat_model ?? "no chat model"}`);
  } catch (e) {
    showError("library", e);
  }
}

async function refreshSources() {
  const body = $("sources").querySelector("tbody")!;
  try {
    const sources = await api.listSources();
    body.replaceChildren(
      ...sources.map((s) => {
        const tr = el("tr");
        const where = el("td");
        where.append(el("div", s.path, "path"));
        // A platform export's breakdown: "linkedin: 12 posts, 3 articles".
        const exported = s.by_platform.filter((p) => p.platform !== "files");
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

/** Import paths: what the drop handler, the file picker and the tests call. */
export async function importPaths(paths: string[]): Promise<ImportReport> {
  const box = $("import-progress");
  box.hidden = false;
  box.dataset.state = "running";
  $("import-issues").hidden = true;
  const bar = $<HTMLProgressElement>("import-bar");
  const channel = new Channel<Progress>();
  channel.onmessage = (m) => {
    if (m.kind !== "progress") return;
    const p = m.progress;
    bar.max = Math.max(1, p.total);
    bar.value = p.done;
    $("import-label").textContent = `${p.stage}: ${p.done}/${p.total}${p.item ? " · " + p.item.split("/").pop() : ""}`;
  };
  try {
    const report = await api.importPaths(paths, channel);
    const issues = [...(report.skipped ?? []), ...(report.failed ?? [])];
    $("import-label").textContent =
      `${report.added} added, ${report.updated} updated, ${report.unchanged} unchanged, ${report.chunks_embedded} chunks embedded`;
    if (issues.length) {
      const list = $("import-issues");
      list.hidden = false;
      list.replaceChildren(el("strong", `${issues.length} files not imported:`), ...issues.map((i) => el("div", `${i.path}: ${i.reason}`)));
    }
    box.dataset.state = "done";
    testHooks.twinLastImport = report;
    await Promise.all([refreshSources(), refreshInfo(), refreshTrainOffer()]);
    return report;
  } catch (e) {
    box.dataset.state = "error";
    $("import-label").textContent = errorText(e);
    throw e;
  }
}
testHooks.twinImport = importPaths;

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
  const picked = await api.pick("files");
  if (picked.length) importPaths(picked).catch(() => {});
});
$("watch-folder").addEventListener("click", async () => {
  const [folder] = await api.pick("folder");
  if (folder) watchFolder(folder).catch(() => {});
});

/** Watch a folder the user picked (what the button and the tests call). */
async function watchFolder(folder: string): Promise<void> {
  const channel = new Channel<Progress>();
  $("import-progress").hidden = false;
  channel.onmessage = (m) => {
    if (m.kind === "progress") $("import-label").textContent = `${m.progress.stage}: ${m.progress.done}/${m.progress.total}`;
  };
  try {
    await api.watchFolder(folder, channel);
    $("import-label").textContent = `watching ${folder}`;
    await refreshSources();
  } catch (e) {
    showError("watch", e);
    throw e;
  }
}
testHooks.twinWatch = watchFolder;
$("import-cancel").addEventListener("click", () => api.cancel("import"));

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $<HTMLInputElement>("search-input").value.trim();
  if (!text) return;
  const list = $("search-results");
  list.dataset.state = "searching";
  try {
    const results = await api.search(text, 10);
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

// The Settings screen: models (registered, found in Ollama and LM Studio, recommended for this
// computer, pulled from Hugging Face) and the user's settings.
import { api, errorText } from "../api";
import type { ApiStatus } from "../bindings/ApiStatus";
import type { Recommendation } from "../bindings/Recommendation";
import { $, barChannel, el, loaders, showError } from "../dom";
import { loadAutotrainSettings } from "./history";

async function loadModels() {
  try {
    const m = await api.listModels();
    const body = $("models").querySelector("tbody")!;
    body.replaceChildren(
      ...m.registered.map((r) => {
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
              await api.useModel(r.id);
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
        ? m.discovered.map((d) => {
            const li = el("li", `${d.name} (${d.origin}) `);
            const b = el("button", "Use in place", "link");
            b.addEventListener("click", async () => {
              await api.addModel(d.path, d.origin);
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
    const s = await api.settings();
    $<HTMLInputElement>("set-author").value = s.author;
    $<HTMLInputElement>("set-threads").value = String(s.threads);
    $<HTMLInputElement>("set-gpu").value = s.gpu_layers == null ? "" : String(s.gpu_layers);
    $<HTMLInputElement>("set-data").value = s.data_dir;
  } catch (e) {
    showError("settings", e);
  }
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

/** One model in the catalog, as `recommended_models` judges it against this computer. */
function recommendedRow(r: Recommendation): HTMLElement {
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
    const rec = await api.recommendedModels();
    const m = rec.machine;
    const gpu = m.gpu ? `${m.gpu[0]}, ${gb(m.gpu[1])}` : "no GPU this build can use";
    $("recommended-machine").textContent =
      `This computer: ${gb(m.ram_bytes)} RAM, ${m.cpu_threads} CPU threads, ${gpu}. ` +
      `Catalog v${rec.catalog_version}, reviewed ${rec.reviewed}; memory figures are estimates.`;
    const all = $<HTMLInputElement>("recommended-all").checked;
    $("recommended")
      .querySelector("tbody")!
      .replaceChildren(...rec.models.filter((r) => all || r.placement.kind !== "too_big").map(recommendedRow));
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
    await api.pullModel(repo, file, barChannel("pull-bar"));
    loadModels();
    loadRecommended();
  } catch (err) {
    showError("download", err);
  }
  box.hidden = true;
}

$("model-add").addEventListener("click", async () => {
  const [file] = await api.pick("model");
  if (!file) return;
  try {
    await api.addModel(file, null);
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
    await api.saveSettings({
      author: $<HTMLInputElement>("set-author").value,
      threads: Number($<HTMLInputElement>("set-threads").value || 0),
      gpu_layers: gpu === "" ? null : Number(gpu),
      data_dir: $<HTMLInputElement>("set-data").value,
    });
    $("settings-state").textContent = "saved";
  } catch (err) {
    showError("settings", err);
  }
});

/** The local API's switch, address and key. */
function showApi(st: ApiStatus) {
  $<HTMLInputElement>("set-api").checked = st.preference.enabled;
  $<HTMLInputElement>("set-api-port").value = String(st.preference.port);
  const running = st.base_url != null && st.token != null;
  $("api-details").hidden = !running;
  $("api-state").textContent = running ? "serving" : st.preference.enabled ? "not running" : "off";
  $("api-url").textContent = st.base_url ?? "";
  $("api-token").textContent = st.token ?? "";
  $("api-token-file").textContent = st.token_file;
}

async function loadApi() {
  try {
    showApi(await api.apiStatus());
  } catch (e) {
    showError("local API", e);
  }
}

$("api-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const port = Number($<HTMLInputElement>("set-api-port").value || 0);
    showApi(await api.setApi($<HTMLInputElement>("set-api").checked, port));
  } catch (err) {
    showError("local API", err);
  }
});
$("api-copy").addEventListener("click", () => navigator.clipboard?.writeText($("api-token").textContent ?? ""));

/** Export or import a twin bundle with progress; the outcome in a line under the buttons. */
async function withBundleProgress(work: () => Promise<string>) {
  const box = $("bundle-progress");
  box.hidden = false;
  try {
    $("bundle-state").textContent = await work();
  } catch (err) {
    $("bundle-state").textContent = errorText(err);
  }
  box.hidden = true;
}

$("bundle-cancel").addEventListener("click", () => api.cancel("bundle"));
$("bundle-export").addEventListener("click", async () => {
  const [path] = await api.pick("savebundle");
  if (!path) return;
  const withLibrary = $<HTMLInputElement>("bundle-with-library").checked;
  await withBundleProgress(async () => {
    const x = await api.bundleExport(path, withLibrary, barChannel("bundle-bar"));
    const mb = (x.size / 1e6).toFixed(1);
    const left = x.left_out.length ? ` Left out (other base model): ${x.left_out.join(", ")}.` : "";
    return `Exported ${x.manifest.adapters.length} version(s) of your twin on ${x.manifest.base_model.name} to ${x.path} (${mb} MB).${left}`;
  });
});
$("bundle-import").addEventListener("click", async () => {
  const [path] = await api.pick("bundle");
  if (!path) return;
  await withBundleProgress(async () => {
    let model: string | null = null;
    for (;;) {
      try {
        const x = await api.bundleImport(path, model, barChannel("bundle-bar"));
        loadModels();
        return `Imported your twin (${x.adapters} version(s)${x.library ? " and the library" : ""}) on ${x.manifest.base_model.name}.`;
      } catch (err) {
        // The base model is not here (the only thing an import finds missing): let the user
        // point at it, then try again.
        if (model == null && typeof err === "object" && err !== null && (err as { kind?: string }).kind === "not_found") {
          const [file] = await api.pick("model");
          if (file) {
            model = file;
            continue;
          }
        }
        throw err;
      }
    }
  });
});

loaders.settings = () => {
  loadModels();
  loadRecommended();
  loadSettings();
  loadAutotrainSettings();
  loadApi();
};

// The Train screen: the dataset, a training run with its live loss chart, the adapters, and the
// first-run offer to train a voice.
import { Channel } from "@tauri-apps/api/core";
import { api, errorText, isCancelled, type TrainOptions, type TrainStream } from "../api";
import type { DatasetStats } from "../bindings/DatasetStats";
import { $, barChannel, el, loaders, show, showError } from "../dom";
import { loadHistory } from "./history";

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
    const d = await api.datasetSummary();
    if (!d) return;
    // Stored as JSON with the dataset; written from `DatasetStats`.
    const s = d.record.stats as unknown as DatasetStats;
    $("dataset-summary").textContent =
      `Dataset ${d.record.id}: ${s.train_user} of your passages + ${s.train_replay} replay for training, ${s.test_user} held out (${s.test_documents} documents); ${s.train_words} words.`;
    $("dataset-examples").replaceChildren(
      ...d.examples.map((e) => {
        const li = el("li");
        // The request the passage answers, stored with the example as [format, topic].
        const title = e.request ? `${FORMAT_NAMES[e.request[0]] ?? e.request[0]}: ${e.request[1]}` : "(no request)";
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
    const a = await api.listAdapters();
    const body = $("adapters").querySelector("tbody")!;
    body.replaceChildren(
      ...a.adapters.map((x) => {
        const tr = el("tr");
        const used = a.active.filter((c) => c.adapter?.id === x.id).map((c) => `${c.channel}@${c.scale}`);
        // Stored as JSON with the adapter by the trainer (`train::trainer`).
        const m = x.metrics as { base_eval_loss?: number; best_eval_loss?: number };
        tr.append(
          el("td", x.name),
          el("td", `${Number(m.base_eval_loss).toFixed(3)} → ${Number(m.best_eval_loss).toFixed(3)}`),
          el("td", used.join(", ") || "—"),
        );
        const td = el("td");
        const b = el("button", "Use");
        b.addEventListener("click", async () => {
          await api.useAdapter(x.id, 1.0, null);
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
    await api.buildDataset(barChannel("dataset-bar"));
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
function trainOptions(): TrainOptions {
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
    const p = await api.trainPlan(trainOptions());
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
  const channel = new Channel<TrainStream>();
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
    const o = await api.startTraining(trainOptions(), channel);
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
export async function refreshTrainOffer() {
  try {
    const [a, info] = await Promise.all([api.listAdapters(), api.appInfo()]);
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
$("train-cancel").addEventListener("click", () => api.cancel("train"));
$("adapter-rollback").addEventListener("click", async () => {
  await api.rollbackAdapter(null);
  loadAdapters();
});

loaders.train = () => {
  loadDataset();
  loadAdapters();
  loadHistory();
};

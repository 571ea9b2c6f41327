// The twin learning by itself: the quiet status in the header ("Learning from 3 new posts…
// 40%", "Your twin improved: held-out loss −6%"), the Twin history on the Train screen (every
// training cycle, a chart of held-out loss over versions) and the switch in Settings.
import { listen } from "@tauri-apps/api/event";
import { api, errorText } from "../api";
import type { AutotrainEvent } from "../bindings/AutotrainEvent";
import type { CycleRecord } from "../bindings/CycleRecord";
import { $, el, showError } from "../dom";

const PHASES: Record<string, string> = { dataset: "reading", train: "learning", evaluate: "checking" };

function posts(n: number): string {
  return `${n} new ${n === 1 ? "piece" : "pieces"}`;
}

/** The header's one line about a cycle; a finished one stays for a minute. */
function showLearning(text: string, linger = false) {
  const line = $("learning");
  line.textContent = text;
  line.hidden = false;
  if (linger) setTimeout(() => (line.hidden = true), 60_000);
}

/** What a finished cycle means, in a sentence (the core's reason follows in the history). */
export function outcome(c: CycleRecord): string {
  const cand = c.scores.candidate;
  const inc = c.scores.incumbent;
  if (c.status === "failed") return `Learning failed: ${c.error ?? "see the history"}`;
  if (c.status !== "done") return `Interrupted while ${PHASES[c.phase] ?? c.phase}; it resumes`;
  const change = cand?.nll != null && inc?.nll ? `${((cand.nll / inc.nll - 1) * 100).toFixed(1)}%` : "";
  return c.promoted
    ? `Your twin improved: held-out loss ${change.replace("-", "−")}`
    : `Kept ${c.incumbent_name}: the new version was not better`;
}

function onEvent(e: AutotrainEvent) {
  if (e.type === "progress") {
    showLearning(`Learning from ${posts(e.documents)}… ${Math.round(e.fraction * 100)}%`);
  } else if (e.type === "paused") {
    showLearning("Learning waits while you work");
  } else {
    showLearning(outcome(e.cycle), true);
    if (!$("screen-train").hidden) loadHistory();
  }
}
listen<AutotrainEvent>("autotrain", (m) => onEvent(m.payload)).catch(() => {});

const SVG = "http://www.w3.org/2000/svg";

/** Held-out loss per cycle: each candidate as a dot (filled when put to use), the version it
 * competed against as a dashed line. Losses of different cycles share a held-out split. */
function drawHistory(cycles: CycleRecord[]) {
  const svg = $("history-chart");
  const done = cycles.filter((c) => c.scores.candidate?.nll != null).reverse();
  if (!done.length) return svg.replaceChildren();
  const ys = done.flatMap((c) => [c.scores.candidate?.nll, c.scores.incumbent?.nll]).filter((v): v is number => v != null);
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  const pad = Math.max((hi - lo) * 0.15, 0.01);
  const x = (i: number) => 30 + (350 * (i + 0.5)) / done.length;
  const y = (v: number) => 140 - (120 * (v - lo + pad)) / (hi - lo + 2 * pad);
  const shapes: Element[] = [];
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "incumbent");
  line.setAttribute(
    "points",
    done
      .filter((c) => c.scores.incumbent?.nll != null)
      .map((c) => `${x(done.indexOf(c)).toFixed(1)},${y(c.scores.incumbent!.nll!).toFixed(1)}`)
      .join(" "),
  );
  shapes.push(line);
  done.forEach((c, i) => {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(i).toFixed(1));
    dot.setAttribute("cy", y(c.scores.candidate!.nll!).toFixed(1));
    dot.setAttribute("r", "4");
    dot.setAttribute("class", c.promoted ? "promoted" : "kept");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${c.candidate_name}: ${c.reason ?? ""}`;
    dot.append(title);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", x(i).toFixed(1));
    label.setAttribute("y", "155");
    label.setAttribute("text-anchor", "middle");
    label.textContent = c.candidate_name ?? `#${c.id}`;
    shapes.push(dot, label);
  });
  for (const v of [lo, hi]) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", "2");
    t.setAttribute("y", (y(v) + 3).toFixed(1));
    t.textContent = v.toFixed(2);
    shapes.push(t);
  }
  svg.replaceChildren(...shapes);
}

const WHY: Record<string, string> = {
  threshold: "new writing",
  platform: "a new platform",
  schedule: "weekly",
  manual: "you asked",
};

/** The Train screen's Twin history: what automation is doing and every cycle so far. */
export async function loadHistory() {
  try {
    const [status, cycles] = await Promise.all([api.autotrainStatus(), api.autotrainHistory(50)]);
    const s = status.settings;
    const waiting = `${status.pending.words} new words since the last cycle`;
    $("autotrain-summary").textContent = s.enabled
      ? `Learning by itself after ${s.min_words} new words (${waiting}).`
      : `Learning by itself is off (${waiting}); turn it on in Settings.`;
    drawHistory(cycles);
    $("cycles")
      .querySelector("tbody")!
      .replaceChildren(
        ...cycles.map((c) => {
          const tr = el("tr");
          const cand = c.scores.candidate?.nll;
          const inc = c.scores.incumbent?.nll;
          const loss = cand != null && inc != null ? `${cand.toFixed(3)} vs ${inc.toFixed(3)}` : "—";
          const result = el("td");
          result.append(el("div", outcome(c)), el("div", c.reason ?? "", "muted small"));
          tr.dataset.promoted = String(c.promoted);
          tr.append(
            el("td", String(c.id)),
            el("td", new Date(c.started_at * 1000).toLocaleString()),
            el("td", `${WHY[c.trigger] ?? c.trigger} (${c.change.words} words)`),
            el("td", `${c.candidate_name ?? "—"} vs ${c.incumbent_name}`),
            el("td", loss),
            result,
          );
          return tr;
        }),
      );
  } catch (e) {
    showError("twin history", e);
  }
}

$("autotrain-run").addEventListener("click", async () => {
  const b = $<HTMLButtonElement>("autotrain-run");
  b.disabled = true;
  try {
    await api.autotrainRun();
  } catch (e) {
    showLearning(errorText(e), true);
  }
  b.disabled = false;
  loadHistory();
});

/** Settings: the switch and when a cycle wakes. */
export async function loadAutotrainSettings() {
  try {
    const s = (await api.autotrainStatus()).settings;
    $<HTMLInputElement>("set-autotrain").checked = s.enabled;
    $<HTMLInputElement>("set-autotrain-words").value = String(s.min_words);
    $<HTMLInputElement>("set-autotrain-days").value = String(s.every_days);
    $<HTMLInputElement>("set-autotrain-preference").checked = s.preference;
  } catch (e) {
    showError("settings", e);
  }
}

$("autotrain-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const s = (await api.autotrainStatus()).settings;
    const num = (id: string, fallback: number) => {
      const v = $<HTMLInputElement>(id).valueAsNumber;
      return Number.isFinite(v) && v > 0 ? v : fallback;
    };
    await api.saveAutotrainSettings({
      ...s,
      enabled: $<HTMLInputElement>("set-autotrain").checked,
      min_words: num("set-autotrain-words", s.min_words),
      every_days: num("set-autotrain-days", s.every_days),
      preference: $<HTMLInputElement>("set-autotrain-preference").checked,
    });
    $("autotrain-state").textContent = "saved";
  } catch (err) {
    showError("settings", err);
  }
});

// What every screen shares: element lookup, the status line, progress bars and navigation.
import { Channel } from "@tauri-apps/api/core";
import { errorText, type Progress } from "./api";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

export function setStatus(text: string) {
  $("status").textContent = text;
}

export function showError(where: string, e: unknown) {
  setStatus(`${where}: ${errorText(e)}`);
}

/** A channel whose progress events move the `<progress>` element `barId`. */
export function barChannel(barId: string): Channel<Progress> {
  const bar = $<HTMLProgressElement>(barId);
  const channel = new Channel<Progress>();
  channel.onmessage = (m) => {
    if (m.kind !== "progress") return;
    bar.max = Math.max(1, m.progress.total);
    bar.value = m.progress.done;
  };
  return channel;
}

export const screens = ["library", "draft", "train", "evaluate", "settings"] as const;
export type Screen = (typeof screens)[number];

/** What each screen loads when it is shown; every screen module registers its own. */
export const loaders: Partial<Record<Screen, () => void>> = {};

export function show(screen: Screen) {
  for (const s of screens) {
    $(`screen-${s}`).hidden = s !== screen;
    document.querySelector(`nav [data-screen="${s}"]`)?.setAttribute("aria-selected", String(s === screen));
  }
  loaders[screen]?.();
}

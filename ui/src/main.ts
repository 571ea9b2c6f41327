// Twin's front end: five screens over the app's Tauri commands, one module each under
// `screens/`, all calling the typed commands in `api.ts`. No business logic: every decision is
// made in twin-core; the screens render what the commands return and stream.
import { api } from "./api";
import { screens, show, type Screen } from "./dom";
import { importPaths } from "./screens/library";
import "./screens/draft";
import { refreshTrainOffer } from "./screens/train";
import "./screens/settings";
import "./screens/evaluate";

document.querySelectorAll<HTMLButtonElement>("nav button").forEach((b) =>
  b.addEventListener("click", () => show(b.dataset.screen as Screen)),
);
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key >= "1" && e.key <= "5") {
    e.preventDefault();
    show(screens[Number(e.key) - 1]);
  }
});

show("library");
refreshTrainOffer();
document.body.dataset.ready = "yes";
// Files Twin was opened with ("Open with", `twin-app FILE…`) are imported as if dropped.
api.launchPaths().then((paths) => {
  if (paths.length) importPaths(paths).catch(() => {});
});

// The app's commands, typed. Every type comes from `./bindings`, which `cargo test` generates
// from the Rust structs the commands return (ts-rs): a field renamed in Rust is a type error
// here or in a screen, not a blank screen. The screens call these, never `invoke` directly.
import { invoke, Channel } from "@tauri-apps/api/core";
import type { AdaptersOverview } from "./bindings/AdaptersOverview";
import type { ApiStatus } from "./bindings/ApiStatus";
import type { AutotrainSettings } from "./bindings/AutotrainSettings";
import type { AutotrainStatus } from "./bindings/AutotrainStatus";
import type { CycleRecord } from "./bindings/CycleRecord";
import type { ComparedMetric } from "./bindings/ComparedMetric";
import type { DatasetOverview } from "./bindings/DatasetOverview";
import type { DatasetRecord } from "./bindings/DatasetRecord";
import type { DraftEdit } from "./bindings/DraftEdit";
import type { DraftEvent } from "./bindings/DraftEvent";
import type { DraftOutcome } from "./bindings/DraftOutcome";
import type { DraftSetup } from "./bindings/DraftSetup";
import type { EvalRunRecord } from "./bindings/EvalRunRecord";
import type { Exported } from "./bindings/Exported";
import type { Format } from "./bindings/Format";
import type { Imported } from "./bindings/Imported";
import type { ImportReport } from "./bindings/ImportReport";
import type { Ideas } from "./bindings/Ideas";
import type { Info } from "./bindings/Info";
import type { JobKind } from "./bindings/JobKind";
import type { ModelRecord } from "./bindings/ModelRecord";
import type { ModelsOverview } from "./bindings/ModelsOverview";
import type { PastDraft } from "./bindings/PastDraft";
import type { Preparation } from "./bindings/Preparation";
import type { ProgressEvent } from "./bindings/ProgressEvent";
import type { Recommendations } from "./bindings/Recommendations";
import type { SearchResult } from "./bindings/SearchResult";
import type { Settings } from "./bindings/Settings";
import type { Source } from "./bindings/Source";
import type { StyleCard } from "./bindings/StyleCard";
import type { Summary } from "./bindings/Summary";
import type { TrainEvent } from "./bindings/TrainEvent";
import type { TrainOutcome } from "./bindings/TrainOutcome";
import type { TrainPlan } from "./bindings/TrainPlan";
import type { TrainChoices } from "./bindings/TrainChoices";
import type { TwinError } from "./bindings/TwinError";

export type { DraftOutcome, Format, ImportReport, Summary, TrainEvent };

/** What a command streams through its channel (see `src-tauri/src/commands.rs`). */
export type Progress = { kind: "progress"; progress: ProgressEvent };
export type DraftStream = Progress | { kind: "model"; setup: DraftSetup } | { kind: "draft"; event: DraftEvent };
export type TrainStream = { kind: "train"; event: TrainEvent };

/** What the Draft screen asks for (`DraftArgs` in the shell). */
export type DraftArgs = { topic: string; format: Format; strength: number | null; draft_only: boolean; seed: number | null };

/** What the Train screen lets the user choose. */
export type TrainOptions = TrainChoices;

/** A native dialog's purpose (`Pick` in the shell). */
export type Pick = "files" | "folder" | "model" | "save" | "bundle" | "savebundle";

/** What a command's error says: the core sends `{kind, message, path?}`. */
export function errorText(e: unknown): string {
  return isTwinError(e) ? e.message : String(e);
}

/** Whether a command ended because the user cancelled it (decided by the core, not by words). */
export function isCancelled(e: unknown): boolean {
  return isTwinError(e) && e.kind === "cancelled";
}

function isTwinError(e: unknown): e is TwinError {
  return typeof e === "object" && e !== null && "kind" in e && "message" in e;
}

export const api = {
  appInfo: () => invoke<Info>("app_info"),
  importPaths: (paths: string[], onEvent: Channel<Progress>) => invoke<ImportReport>("import_paths", { paths, onEvent }),
  watchFolder: (path: string, onEvent: Channel<Progress>) => invoke<ImportReport>("watch_folder", { path, onEvent }),
  listSources: () => invoke<Source[]>("list_sources"),
  search: (text: string, limit: number) => invoke<SearchResult[]>("search", { text, limit }),
  prepareDraft: (args: DraftArgs) => invoke<Preparation>("prepare_draft", { args }),
  draft: (args: DraftArgs, onEvent: Channel<DraftStream>) => invoke<DraftOutcome>("draft", { args, onEvent }),
  cancel: (job: JobKind) => invoke<boolean>("cancel_job", { job }),
  styleCard: () => invoke<StyleCard>("style_card"),
  setStyleCard: (text: string | null) => invoke<void>("set_style_card", { text }),
  draftHistory: (limit: number) => invoke<PastDraft[]>("draft_history", { limit }),
  exportMarkdown: (path: string, topic: string, format: Format, text: string) =>
    invoke<void>("export_markdown", { path, topic, format, text }),
  ideas: (themes: number) => invoke<Ideas>("ideas", { themes }),
  recordFinal: (traceId: number, text: string) => invoke<DraftEdit | null>("record_final", { traceId, text }),
  listModels: () => invoke<ModelsOverview>("list_models"),
  addModel: (path: string, origin: string | null) => invoke<ModelRecord>("add_model", { path, origin }),
  useModel: (id: number) => invoke<void>("use_model", { id }),
  recommendedModels: () => invoke<Recommendations>("recommended_models"),
  pullModel: (repo: string, file: string, onEvent: Channel<Progress>) => invoke<ModelRecord>("pull_model", { repo, file, onEvent }),
  settings: () => invoke<Settings>("settings"),
  saveSettings: (settings: Settings) => invoke<void>("save_settings", { settings }),
  apiStatus: () => invoke<ApiStatus>("api_status"),
  setApi: (enabled: boolean, port: number) => invoke<ApiStatus>("set_api", { enabled, port }),
  bundleExport: (path: string, withLibrary: boolean, onEvent: Channel<Progress>) =>
    invoke<Exported>("bundle_export", { path, withLibrary, onEvent }),
  bundleImport: (path: string, model: string | null, onEvent: Channel<Progress>) =>
    invoke<Imported>("bundle_import", { path, model, onEvent }),
  datasetSummary: () => invoke<DatasetOverview | null>("dataset_summary"),
  buildDataset: (onEvent: Channel<Progress>) => invoke<DatasetRecord>("build_dataset", { onEvent }),
  trainPlan: (options: TrainOptions) => invoke<TrainPlan>("train_plan", { options }),
  startTraining: (options: TrainOptions, onEvent: Channel<TrainStream>) => invoke<TrainOutcome>("start_training", { options, onEvent }),
  listAdapters: () => invoke<AdaptersOverview>("list_adapters"),
  useAdapter: (id: number | null, strength: number, channel: string | null) => invoke<void>("use_adapter", { id, strength, channel }),
  rollbackAdapter: (channel: string | null) => invoke<boolean>("rollback_adapter", { channel }),
  autotrainStatus: () => invoke<AutotrainStatus>("autotrain_status"),
  autotrainHistory: (limit: number) => invoke<CycleRecord[]>("autotrain_history", { limit }),
  saveAutotrainSettings: (settings: AutotrainSettings) => invoke<void>("save_autotrain_settings", { settings }),
  autotrainRun: () => invoke<CycleRecord>("autotrain_run"),
  runEval: (drafts: number, judge: boolean, onEvent: Channel<Progress>) => invoke<Summary>("run_eval", { drafts, judge, onEvent }),
  evalRuns: () => invoke<EvalRunRecord[]>("eval_runs"),
  evalReport: (id: number) => invoke<Summary>("eval_report", { id }),
  compareEvals: (a: number, b: number) => invoke<ComparedMetric[]>("compare_evals", { a, b }),
  pick: (what: Pick) => invoke<string[]>("pick_paths", { what }),
  launchPaths: () => invoke<string[]>("launch_paths"),
};

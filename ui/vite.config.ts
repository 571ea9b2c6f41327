import { defineConfig } from "vite";

// The app embeds ui/dist; `npm run dev` serves the same files for a browser-free preview.
export default defineConfig({
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { outDir: "dist", target: "es2021", sourcemap: false },
});

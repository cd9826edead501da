import { defineConfig } from "vite";

// Built into dashboard/dist, which wrangler serves as static assets ([assets] in wrangler.toml).
// Preact's JSX through Vite's oxc transform (no Babel plugin). `npm run dev` serves it with hot reload and
// sends the Worker's paths to `wrangler dev` (FLOWCP_DEV_WORKER, default http://127.0.0.1:8787).
const worker = process.env.FLOWCP_DEV_WORKER ?? "http://127.0.0.1:8787";
export default defineConfig({
  root: import.meta.dirname,
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true },
  server: {
    proxy: Object.fromEntries(
      ["/api", "/mcp", "/oauth", "/.well-known", "/healthz", "/demo", "/dev"].map((p) => [p, { target: worker, changeOrigin: false }]),
    ),
  },
});

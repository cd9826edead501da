import { defineConfig } from "vite";

// Built into dashboard/dist, which wrangler serves as static assets ([assets] in wrangler.toml).
export default defineConfig({
  root: import.meta.dirname,
  build: { outDir: "dist", emptyOutDir: true },
});

import { defineConfig } from "vitest/config";

// No React plugin: esbuild compiles TSX with the automatic runtime, which is all the page needs (and keeps the
// toolchain to vite alone). `subspace serve` embeds dist/ (host/build.rs).
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      // React Flow marks its module "use client" (for server components); meaningless in a plain page.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});

// Builds each page into one self-contained HTML file (inline JS and CSS) in gateway/web/dist,
// reproducibly: same sources and pinned packages, same bytes. Writes the SHA-256 of the page's
// code into the page and dist/SHA256SUMS. Run by `npm run build:web`; tests/api/test_web_bundle.py
// rebuilds and fails when the committed files differ.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { viteSingleFile } from "vite-plugin-singlefile";

const here = dirname(fileURLToPath(import.meta.url));
const PAGES = ["verify", "progress", "status"];
const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");
const dist = process.argv[2] ?? join(here, "dist");
const sums = [];

/** ``virtual:abis``: only the ABIs of contracts/build/*.json (not their bytecode). */
const abis = {
  name: "claimx-abis",
  resolveId: (id) => (id === "virtual:abis" ? "\0virtual:abis" : null),
  load(id) {
    if (id !== "\0virtual:abis") return null;
    const abi = (name) => JSON.parse(readFileSync(join(here, "..", "..", "contracts", "build", `${name}.json`), "utf8")).abi;
    return `export const logAbi = ${JSON.stringify(abi("EvidenceLog"))};\n` +
      `export const registryAbi = ${JSON.stringify(abi("MemberRegistry"))};\n`;
  },
};

for (const page of PAGES) {
  const out = mkdtempSync(join(tmpdir(), `claimx-web-${page}-`));
  try {
    await build({
      root: join(here, "src", page), base: "./", logLevel: "warn", configFile: false,
      plugins: [abis, viteSingleFile({ removeViteModuleLoader: true })],
      build: { outDir: out, emptyOutDir: true, target: "es2022", minify: true, reportCompressedSize: false },
    });
    let html = readFileSync(join(out, "index.html"), "utf8");
    const code = html.match(/<script type="module"[^>]*>([\s\S]*?)<\/script>/);
    if (!code) throw new Error(`${page}: no inline module script in the built page`);
    const codeSum = sha256(code[1]);
    html = html.replace("@@BUNDLE_SHA256@@", codeSum);
    writeFileSync(join(dist, `${page}.html`), html);
    sums.push(`${sha256(html)}  ${page}.html`, `${codeSum}  ${page}.html#code`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
writeFileSync(join(dist, "SHA256SUMS"), sums.join("\n") + "\n");
console.log(sums.join("\n"));

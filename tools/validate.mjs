// Validate a glTF/GLB file with the Khronos glTF Validator and print its JSON report on stdout.
// Usage: node tools/validate.mjs FILE [MAX_ISSUES]   (run `npm ci --prefix tools` once first)
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import validator from "gltf-validator";

const [file, maxIssues = "1000"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node tools/validate.mjs FILE [MAX_ISSUES]");
  process.exit(2);
}
const bytes = new Uint8Array(await readFile(file));
const report = await validator.validateBytes(bytes, { uri: basename(file), maxIssues: Number(maxIssues) });
console.log(JSON.stringify(report, null, 2));

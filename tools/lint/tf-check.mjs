// Checks every .tf, .tfvars and .hcl file under the given folders offline with HashiCorp's own HCL parser
// (compiled to WebAssembly in the npm package @cdktf/hcl2json):
//  - the file parses;
//  - every variable has a type and a non-empty description; every output a description;
//  - no literal secrets: no string literal (not an expression) assigned to a secret-looking
//    attribute, no default on a secret-looking variable, no AWS access key or private key text;
//  - every module folder has a README.md, and every local module source exists.
// Usage: node tf-check.mjs DIR...
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse } from "@cdktf/hcl2json";

const SECRET_KEY = /(password|secret|token|api_key|apikey|access_key|private_key|client_secret)$/i;
const ALLOWED_SECRET_KEYS = /(_arn|_arns|_name|_id|_ids|_file|_length|_count|secret_arn_list)$/i;
const RAW_PATTERNS = [
  [/AKIA[0-9A-Z]{16}/, "an AWS access key id"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/aws_secret_access_key\s*=/i, "an AWS secret access key"],
];

function tfFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e === ".terraform") continue;
    if (statSync(p).isDirectory()) out.push(...tfFiles(p));
    else if (e.endsWith(".tf") || e.endsWith(".tfvars") || e.endsWith(".hcl")) out.push(p);
  }
  return out;
}

// An ARN names a secret in Secrets Manager; it is not one.
const isLiteral = (v) => typeof v === "string" && !v.includes("${") && v !== "" && !v.startsWith("arn:");

// Walk parsed HCL JSON: report secret-looking attributes holding literal strings.
function walk(node, path, problems) {
  if (Array.isArray(node)) return node.forEach((n, i) => walk(n, path, problems));
  if (!node || typeof node !== "object") return;
  for (const [k, v] of Object.entries(node)) {
    if (SECRET_KEY.test(k) && !ALLOWED_SECRET_KEYS.test(k) && isLiteral(v))
      problems.push(`${path}${k}: a literal value for a secret (use a variable or Secrets Manager)`);
    walk(v, `${path}${k}.`, problems);
  }
}

let failed = 0;
const report = (f, msg) => {
  console.error(`${f}: ${msg}`);
  failed = 1;
};
let count = 0;
for (const root of process.argv.slice(2)) {
  for (const f of tfFiles(root)) {
    count++;
    const text = readFileSync(f, "utf8");
    for (const [re, what] of RAW_PATTERNS) if (re.test(text)) report(f, `contains ${what}`);
    let hcl;
    try {
      hcl = await parse(f, text);
    } catch (e) {
      report(f, `does not parse: ${String(e.message ?? e).replace(/\s+/g, " ")}`);
      continue;
    }
    for (const [name, blocks] of Object.entries(hcl.variable ?? {}))
      for (const b of blocks) {
        if (!b.type) report(f, `variable "${name}" has no type`);
        if (!b.description || !String(b.description).trim()) report(f, `variable "${name}" has no description`);
        if (SECRET_KEY.test(name) && !ALLOWED_SECRET_KEYS.test(name)) {
          if (b.default !== undefined && b.default !== null) report(f, `variable "${name}" is a secret with a default`);
          if (b.sensitive !== true) report(f, `variable "${name}" is a secret and not sensitive = true`);
        }
      }
    for (const [name, blocks] of Object.entries(hcl.output ?? {}))
      for (const b of blocks) if (!b.description) report(f, `output "${name}" has no description`);
    for (const [name, blocks] of Object.entries(hcl.module ?? {}))
      for (const b of blocks)
        if (typeof b.source === "string" && b.source.startsWith(".") && !existsSync(resolve(dirname(f), b.source)))
          report(f, `module "${name}": source ${b.source} does not exist`);
    const problems = [];
    walk(hcl, "", problems);
    for (const p of problems) report(f, p);
  }
  // every module has a README
  const mods = join(root, "modules");
  if (existsSync(mods))
    for (const m of readdirSync(mods))
      if (statSync(join(mods, m)).isDirectory() && !existsSync(join(mods, m, "README.md")))
        report(join(mods, m), "no README.md");
}
if (count === 0) report(process.argv.slice(2).join(" "), "no .tf files");
if (!failed) console.log(`terraform: ${count} files parse; variables typed and described; no literal secrets`);
process.exit(failed);

// The SDK used from another project before it is published, as its README
// says: `npm pack` here, then `npm install` of the tarball there.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const sdk = fileURLToPath(new URL("..", import.meta.url));

test("npm pack gives a tarball another project installs and imports", () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-sdk-pack-"));
  try {
    const npm = (args, cwd) => execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, stdio: "pipe" });
    npm(["pack", "--pack-destination", dir], sdk); // dist/ was built by npm test
    const [tarball] = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote no tarball");
    const app = join(dir, "app");
    execFileSync("mkdir", [app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    npm(["install", join(dir, tarball)], app);
    writeFileSync(join(app, "main.mjs"), `
      import { createGatehouseClient, TokenHolder, OAuthError } from "@gatehouse/sdk";
      const g = createGatehouseClient({ baseUrl: "http://127.0.0.1:1" });
      console.log(typeof g.passwordGrant, typeof TokenHolder, typeof OAuthError);
    `);
    const out = execFileSync("node", ["main.mjs"], { cwd: app }).toString().trim();
    assert.equal(out, "function function function");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

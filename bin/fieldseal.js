#!/usr/bin/env node
// The fieldseal command: checks the Node.js version, then runs the compiled output in dist/.
import { fileURLToPath } from "node:url";
import { buildIfStale } from "./build-if-stale.js";
import { meetsNodeRequirement, NODE_REQUIREMENT_TEXT } from "./node-requirement.js";

// The one read of the environment: src/config.ts parses it (test/unit/settings-declared.test.ts checks).
const env = process.env;
if (!meetsNodeRequirement(process.versions.node)) {
  process.stderr.write(
    `fieldseal: needs ${NODE_REQUIREMENT_TEXT}, this is ${process.version} (npm run fieldseal uses the project's own Node)\n`,
  );
  process.exit(78);
}
try {
  // A checkout builds when its sources changed since the last build; an installed copy has dist/ only.
  if (buildIfStale(fileURLToPath(new URL("..", import.meta.url))) === "no-compiler") {
    process.stderr.write(
      "fieldseal: sources changed since the last build, and TypeScript is not installed\n",
    );
  }
} catch {
  process.stderr.write("fieldseal: the TypeScript build failed (its errors are above)\n");
  process.exit(1);
}
try {
  const { main } = await import("../dist/src/cli.js");
  process.exitCode = await main(process.argv.slice(2), env);
} catch (err) {
  // main() turns every error a person can act on into one line; anything else is a bug. Its message
  // still goes out as one line (the stack only with FIELDSEAL_LOG_LEVEL=debug), with a non-zero exit.
  const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
  process.stderr.write(`fieldseal: unexpected error: ${message}\n`);
  if (env.FIELDSEAL_LOG_LEVEL === "debug" && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = 70;
}

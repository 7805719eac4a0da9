/**
 * Reads the instructions the runtime-layout test needs from the repository's Dockerfile, so the test runs
 * what the image runs (entrypoint, command, user, environment, layout) rather than a copy of it.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

export const DOCKERFILE = resolve(import.meta.dirname, "../../Dockerfile");

export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

export interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** The Dockerfile's stages, each with its instructions (continuation lines joined, comments dropped). */
export function readStages(path = DOCKERFILE): Stage[] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(`${pending}${line}`.trim());
    pending = "";
  }
  if (pending !== "") throw new Error("Dockerfile ends inside a continued line");
  const stages: { from: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) throw new Error(`unreadable Dockerfile line: ${line}`);
    const keyword = m[1].toUpperCase();
    if (keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2]);
      if (from?.[1] === undefined) throw new Error(`unreadable FROM: ${line}`);
      stages.push({ from: from[1], name: from[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new Error(`instruction before FROM: ${line}`);
    stage.instructions.push({ keyword, args: m[2] });
  }
  return stages;
}

/** The one instruction `keyword` of a stage (the last one, as Docker applies it). */
export function last(stage: Stage, keyword: string): Instruction {
  const found = stage.instructions.filter((i) => i.keyword === keyword).at(-1);
  if (found === undefined) throw new Error(`the stage has no ${keyword}`);
  return found;
}

/** An exec-form (JSON array) ENTRYPOINT or CMD; shell form is refused (signals would go to a shell). */
export function execForm(instruction: Instruction): string[] {
  const parsed: unknown = JSON.parse(instruction.args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new Error(`${instruction.keyword} must be an exec-form JSON array of strings`);
  }
  return parsed;
}

/** The variables of a stage's ENV instructions (KEY=value form; values unquoted). */
export function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions.filter((x) => x.keyword === "ENV")) {
    for (const pair of i.args.split(/\s+/)) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
      if (m?.[1] === undefined || m[2] === undefined) throw new Error(`unreadable ENV: ${i.args}`);
      env[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
    }
  }
  return env;
}

/**
 * RFC 7807 problem details as Cognigy.AI answers them (`type, title, status, detail, code, traceId`), and a
 * summary of one for error messages. Only the fields listed are read; anything else in the body is ignored
 * so a message can never carry request values back to a log.
 */
export interface ProblemDetails {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  traceId?: string;
}

const MAX_FIELD_CHARS = 300;

/** Parses a problem document from a response body; undefined when the body is not a JSON object. */
export function parseProblem(body: string): ProblemDetails | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const record = parsed as Record<string, unknown>;
  const problem: ProblemDetails = {};
  for (const key of ["type", "title", "detail", "traceId"] as const) {
    const value = record[key];
    if (typeof value === "string") problem[key] = value.slice(0, MAX_FIELD_CHARS);
  }
  if (typeof record.code === "string" || typeof record.code === "number") {
    problem.code = String(record.code).slice(0, MAX_FIELD_CHARS);
  }
  if (typeof record.status === "number") problem.status = record.status;
  return problem;
}

/** "title: detail (code X, traceId Y)", leaving out what is missing. */
export function describeProblem(problem: ProblemDetails | undefined): string {
  if (problem === undefined) return "no problem details";
  const head = [problem.title, problem.detail].filter((s) => s !== undefined && s !== "").join(": ");
  const tail = [
    problem.code !== undefined ? `code ${problem.code}` : undefined,
    problem.traceId !== undefined ? `traceId ${problem.traceId}` : undefined,
  ].filter((s) => s !== undefined);
  return `${head === "" ? "no title" : head}${tail.length > 0 ? ` (${tail.join(", ")})` : ""}`;
}

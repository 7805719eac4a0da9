/** Types of bin/build-if-stale.js (plain JavaScript: it runs before the TypeScript is compiled). */
export declare function sourceDigest(root: string): string | undefined;
export declare function buildIfStale(
  root: string,
  tsc?: string,
  force?: boolean,
): "fresh" | "built" | "no-sources" | "no-compiler";

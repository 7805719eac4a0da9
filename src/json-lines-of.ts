/**
 * The line (1-based) where the value at `path` (e.g. `principals[2].allow[0].ops[1]`) starts in JSON
 * `text`, so configuration errors can point at the line to fix. `text` must already be valid JSON;
 * returns undefined when the path is not in it.
 */
export function lineOfJsonPath(text: string, path: string): number | undefined {
  let i = 0;
  let found: number | undefined;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const readValue = (at: string): void => {
    skipSpace();
    if (at === path) found = lineAt(text, i);
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      skipSpace();
      if (text[i] === close) {
        i++;
        return;
      }
      for (let index = 0; i < text.length; index++) {
        skipSpace();
        let child = `${at}[${index}]`;
        if (c === "{") {
          const key = readString();
          child = at === "" ? key : `${at}.${key}`;
          skipSpace();
          i++; // the colon
        }
        readValue(child);
        skipSpace();
        if (text[i++] === close) return;
      }
      return;
    }
    if (c === '"') {
      readString();
      return;
    }
    while (i < text.length && !/[\s,\]}]/.test(text[i] ?? "")) i++;
  };
  readValue("");
  return found;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let j = 0; j < offset; j++) if (text.charCodeAt(j) === 10) line++;
  return line;
}

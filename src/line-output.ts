/**
 * Writing result lines to an output that may close under us (`fieldseal legacy migrate | head`). Node
 * ignores SIGPIPE, so a closed pipe surfaces as an asynchronous EPIPE `error` event on the stream; with no
 * listener that event is an uncaught exception, and a writer waiting for `drain` would wait forever. This
 * writer listens for it, stops at the next line, and says how many lines went out.
 */
import type { Writable } from "node:stream";

/** Thrown by `LineOutput.write` once the output is closed: the job should stop reading input. */
export class OutputClosedError extends Error {
  readonly written: number;

  constructor(written: number, cause: unknown) {
    // The error code only (EPIPE, ENOSPC...): never the error's text or the line.
    const code = (cause as { code?: unknown } | undefined)?.code;
    const why = typeof code === "string" && /^[A-Z_]{1,32}$/.test(code) ? ` (${code})` : "";
    super(`standard output closed${why} after ${written} result lines`, { cause });
    this.name = "OutputClosedError";
    this.written = written;
  }
}

/** Writes whole lines to a stream, waiting for it to drain, and failing fast once it is closed. */
export interface LineOutput {
  /** Resolves once `line` is handed to the stream; throws `OutputClosedError` if the stream is closed. */
  write(line: string): Promise<void>;
}

/**
 * A `LineOutput` on `stream` (process.stdout for the CLI). It keeps listening for the stream's life: an EPIPE
 * from lines still buffered when the job ends must not become an uncaught exception either.
 */
export function lineOutput(stream: Writable): LineOutput {
  let written = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const onError = (err: unknown) => {
    failure ??= err;
    wake?.();
  };
  const onClose = () => onError(new Error("output stream closed"));
  const onDrain = () => wake?.();
  stream.on("error", onError);
  stream.on("close", onClose);
  stream.on("drain", onDrain);
  const closed = () => failure !== undefined || stream.destroyed || stream.writableEnded;
  const fail = () => new OutputClosedError(written, failure);
  return {
    async write(line) {
      if (closed()) throw fail();
      const more = stream.write(line);
      written++;
      if (more) return;
      // Wait for drain, or for the error or close that means no drain will ever come.
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (closed()) resolve();
      });
      wake = undefined;
      if (closed()) throw fail();
    },
  };
}

/**
 * The bytes of a request body as they arrive, in one buffer. A hostile client can send a body one byte per
 * HTTP/2 DATA frame: joining all chunks on every chunk copies the body once per byte (quadratic: 12.6 s of
 * CPU for 256 KiB), and keeping the chunks costs a Buffer object per byte (140 MB per 1 MiB stream). Here
 * each chunk is copied in once; the buffer at most doubles as it grows, so each byte is copied a bounded
 * number of times, and it never grows past `ceiling` (the most a caller needs at once, e.g. one whole
 * message at the size limit) unless the bytes not yet consumed already take more: a client cannot make it
 * hold more than that by stopping just short of a doubling.
 *
 * Bytes once written are never overwritten: a view handed out (a message connect keeps, or the `bytes`
 * fields protobuf-es parses as views) stays valid after later appends.
 */
export class ByteAccumulator {
  private held: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  /** `ceiling`: the largest size growth alone may reach (see above). */
  constructor(private readonly ceiling: number) {}

  /** How many bytes are held and not consumed. */
  get length(): number {
    return this.end - this.start;
  }

  /** Adds `chunk` after the bytes held. */
  append(chunk: Uint8Array): void {
    if (this.start === this.end) {
      // Nothing held: take the chunk as it is, uncopied (the common case of a body in one chunk). It is
      // exactly full, so the next append moves to a buffer of our own and never writes into it.
      this.held = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.start = 0;
      this.end = chunk.byteLength;
      return;
    }
    if (this.end + chunk.byteLength > this.held.length) {
      const kept = this.end - this.start;
      const grown = Buffer.allocUnsafe(
        Math.max(kept + chunk.byteLength, Math.min(Math.max(2 * kept, 256), this.ceiling)),
      );
      this.held.copy(grown, 0, this.start, this.end);
      this.held = grown;
      this.start = 0;
      this.end = kept;
    }
    this.held.set(chunk, this.end);
    this.end += chunk.byteLength;
  }

  /** The bytes held and not consumed, as a view. */
  view(): Buffer {
    return this.held.subarray(this.start, this.end);
  }

  /** Drops the first `n` bytes held (they stay valid in any view already taken). */
  consume(n: number): void {
    this.start += n;
  }
}

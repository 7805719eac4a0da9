import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ByteAccumulator } from "../../src/server/byte-accumulator.js";

describe("ByteAccumulator", () => {
  it("holds exactly the bytes appended and not consumed, in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 600 }), fc.nat({ max: 700 })), { maxLength: 40 }),
        (steps) => {
          const acc = new ByteAccumulator(1000);
          let model = Buffer.alloc(0);
          for (const [chunk, take] of steps) {
            acc.append(chunk);
            model = Buffer.concat([model, chunk]);
            const n = Math.min(take, model.length);
            acc.consume(n);
            model = model.subarray(n);
            expect(acc.length).toBe(model.length);
            expect(Buffer.compare(acc.view(), model)).toBe(0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never changes a view taken earlier, whatever is appended or consumed after it", () => {
    const acc = new ByteAccumulator(64);
    acc.append(Buffer.from("first message"));
    const first = acc.view();
    acc.consume(first.length);
    for (let i = 0; i < 1000; i++) acc.append(Buffer.from([i & 0xff]));
    acc.consume(500);
    acc.append(Buffer.alloc(10_000, 0xee));
    expect(first.toString()).toBe("first message");
  });
});

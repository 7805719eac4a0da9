import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import { isFieldsealError } from "../../src/errors.js";
import {
  cardBrand,
  type FieldFormat,
  luhnValid,
  type MaskedValue,
  maskFields,
  maskValue,
  parseFieldFormats,
} from "../../src/masks/index.js";

const HIDDEN = "••••";
const RUNS = { numRuns: 300, seed: 1312 };

const GRAPHEMES = new Intl.Segmenter("und", { granularity: "grapheme" });

/** The characters a reader sees: grapheme clusters that are not only controls, format characters or spaces. */
function visible(text: string): string[] {
  return [...GRAPHEMES.segment(text)].map((s) => s.segment).filter((c) => !/^[\p{Cc}\p{Cf}\p{Z}]+$/u.test(c));
}

/** Appends the Luhn check digit to `body`. */
function withCheckDigit(body: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(`${body}${d}`)) return `${body}${d}`;
  throw new Error("no check digit");
}

/** Every character of `text` that comes from the value: what is left after the format's fixed words. */
function shownChars(masked: MaskedValue, fixedWords: readonly string[]): string {
  let rest = masked.text.replaceAll(HIDDEN, "");
  for (const w of fixedWords) rest = rest.replaceAll(w, "");
  return rest.replaceAll(" ", "");
}

const mask = (format: FieldFormat, value: unknown) =>
  maskValue("f", format, value as Parameters<typeof maskValue>[2]);

describe("Luhn", () => {
  it.each([
    "4111111111111111",
    "5555555555554444",
    "2223003122003222",
    "378282246310005",
    "6011111111111117",
    "3530111333300000",
    "30569309025904",
    "6200000000000005",
    "6759649826438453",
    "79927398713",
  ])("accepts the published test number %s", (n) => {
    expect(luhnValid(n)).toBe(true);
  });

  it.each([
    "4111111111111112",
    "5555555555554445",
    "378282246310006",
    "79927398710",
    "1234567812345678",
    "",
    "41111111x1111111",
  ])("refuses %s", (n) => {
    expect(luhnValid(n)).toBe(false);
  });

  it("catches every single-digit mistype of a valid number", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9]{11,18}$/),
        fc.nat(),
        fc.integer({ min: 1, max: 9 }),
        (body, at, delta) => {
          const good = withCheckDigit(body);
          const i = at % good.length;
          const bad = `${good.slice(0, i)}${(Number(good[i]) + delta) % 10}${good.slice(i + 1)}`;
          expect(luhnValid(good)).toBe(true);
          expect(luhnValid(bad)).toBe(false);
        },
      ),
      RUNS,
    );
  });
});

describe("card brands from the IIN", () => {
  it.each([
    ["4111111111111111", "Visa"],
    ["4222222222222", "Visa"],
    ["5105105105105100", "Mastercard"],
    ["2221000000000009", "Mastercard"],
    ["2720999999999996", "Mastercard"],
    ["378282246310005", "American Express"],
    ["341111111111111", "American Express"],
    ["6011000990139424", "Discover"],
    ["6445644564456445", "Discover"],
    ["3566002020360505", "JCB"],
    ["30569309025904", "Diners Club"],
    ["36227206271667", "Diners Club"],
    ["6200000000000005", "UnionPay"],
    ["6221260000000000", "UnionPay"],
    ["6759649826438453", "Maestro"],
    ["501800000009", "Maestro"],
  ])("%s is %s", (digits, brand) => {
    expect(cardBrand(digits)).toBe(brand);
  });

  it.each([
    "2220999999999999",
    "2721000000000000",
    "9111111111111111",
    "1111111111111117",
    "3400000000000000", // Amex prefix, wrong length
  ])("%s has no known brand", (digits) => {
    expect(cardBrand(digits)).toBeUndefined();
  });
});

describe("card masks", () => {
  it("shows the brand and the last four digits", () => {
    expect(mask({ format: "card" }, "4111 1111-1111 1111")).toEqual({
      format: "card",
      text: "Visa •••• 1111",
      speakable: "Visa ending in 1 1 1 1",
    });
    expect(mask({ format: "card" }, withCheckDigit("911111111111111")).text).toMatch(/^Card •••• \d{4}$/);
  });

  it("never shows more than the brand and the last four digits (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{11,18}$/), (body) => {
        const digits = withCheckDigit(body);
        const m = mask({ format: "card" }, digits);
        const brand = cardBrand(digits) ?? "Card";
        expect(m.text).toBe(`${brand} ${HIDDEN} ${digits.slice(-4)}`);
        expect(m.speakable).toBe(
          `${cardBrand(digits) ?? "card"} ending in ${digits.slice(-4).split("").join(" ")}`,
        );
        expect(shownChars(m, [brand])).toBe(digits.slice(-4));
      }),
      RUNS,
    );
  });

  it.each([
    ["4111111111111112", /Luhn/],
    ["41111111111", /12 to 19 digits/],
    ["41111111111111111111", /12 to 19 digits/],
    ["4111 1111 1111 111a", /digits/],
    ["", /digits/],
  ])("refuses %j", (value, why) => {
    expect(() => mask({ format: "card" }, value)).toThrow(why);
  });
});

describe("national ID masks", () => {
  it("shows nothing of a one-character ID and one of a two-character one", () => {
    expect(mask({ format: "national_id" }, "7")).toEqual({
      format: "national_id",
      text: HIDDEN,
      speakable: "hidden",
    });
    expect(mask({ format: "national_id" }, "a-7").text).toBe(`${HIDDEN} 7`);
  });

  it("shows the last four of its uppercase letters and digits", () => {
    expect(mask({ format: "national_id" }, "123-45-6789")).toEqual({
      format: "national_id",
      text: "•••• 6789",
      speakable: "ending in 6 7 8 9",
    });
    expect(mask({ format: "national_id" }, "ab 12 34 56 c").text).toBe("•••• 456C");
  });

  it("never shows more than four characters, nor more than half of a short one (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Z0-9]{1,40}$/), (id) => {
        const m = mask({ format: "national_id" }, id);
        const shown = shownChars(m, []);
        expect(shown.length).toBeLessThanOrEqual(Math.min(4, Math.floor(id.length / 2)));
        expect(id.endsWith(shown)).toBe(true);
        if (id.length > 1) expect(shown).not.toBe(id);
      }),
      RUNS,
    );
  });

  it.each([
    "",
    " - . ",
    "12#34",
    "ÄB1234",
    "straße1",
    "ı1234",
    "123\u202E456789",
    "123\u200B456789",
    "\u2066123456789\u2069",
  ])("refuses %j", (value) => {
    expect(() => mask({ format: "national_id" }, value)).toThrow(/national_id/);
  });
});

describe("e-mail masks", () => {
  it("shows the first character of the local part and the domain", () => {
    expect(mask({ format: "email" }, " Jane.Doe@Example.COM ")).toEqual({
      format: "email",
      text: "J••••@example.com",
      speakable: "starting with J at example dot com",
    });
    expect(mask({ format: "email" }, "j@my-bank.co.uk")).toEqual({
      format: "email",
      text: "••••@my-bank.co.uk",
      speakable: "an address at my dash bank dot co dot uk",
    });
    expect(mask({ format: "email" }, "+tag@example.com").text).toBe("••••@example.com");
  });

  it("says an IDN domain's dashes one word each, one space apart", () => {
    expect(mask({ format: "email" }, "ab@xn--80ak6aa92e.com").speakable).toBe(
      "starting with a at xn dash dash 80ak6aa92e dot com",
    );
  });

  it("never shows more than one character of the local part (property)", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]$/).filter((s) => !s.includes("..")),
        fc.stringMatching(/^[a-z]{1,10}\.[a-z]{2,6}$/),
        (local, domain) => {
          const m = mask({ format: "email" }, `${local}@${domain}`);
          const [shownLocal] = m.text.split("@");
          expect(shownLocal?.replace(HIDDEN, "")).toBe(local.slice(0, 1));
          expect(m.text.endsWith(`@${domain}`)).toBe(true);
          expect(m.speakable).toBe(`starting with ${local.slice(0, 1)} at ${domain.replace(".", " dot ")}`);
        },
      ),
      RUNS,
    );
  });

  it.each([
    "no-at-sign",
    "two@@example.com",
    "a@b@example.com",
    "@example.com",
    "jane@",
    "jane@localhost",
    "jane doe@example.com",
    ".jane@example.com",
    "ja..ne@example.com",
    "jane@-example.com",
    `${"a".repeat(65)}@example.com`,
    // Quoted local parts and address literals: valid RFC 5321, refused (no bot collects them).
    '"jane doe"@example.com',
    '"j@ne"@example.com',
    "jane@[192.0.2.1]",
    "jane@[IPv6:2001:db8::1]",
    // Invisible or look-alike characters that would make a mask display other than the address.
    "jane\u202E@example.com",
    "\u202Ejane@example.com",
    "jane@exa\u200Bmple.com",
    "jane@example\u2060.com",
    "jane\uFF20example.com",
    "jane@example\uFF0Ecom",
    "e\u0301jane@example.com",
  ])("refuses %j", (value) => {
    expect(() => mask({ format: "email" }, value)).toThrow(/email/);
  });
});

describe("phone masks", () => {
  it("shows the last four, or two, digits", () => {
    expect(mask({ format: "phone", last: 4 }, "+49 (30) 1234-5678")).toEqual({
      format: "phone",
      text: "•••• 5678",
      speakable: "ending in 5 6 7 8",
    });
    expect(mask({ format: "phone", last: 2 }, "+14155552671").text).toBe("•••• 71");
  });

  it("never shows more than asked, nor more than half the digits (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{7,15}$/), fc.constantFrom(2 as const, 4 as const), (d, last) => {
        const m = mask({ format: "phone", last }, `+${d}`);
        const shown = shownChars(m, []);
        expect(shown.length).toBeLessThanOrEqual(Math.min(last, Math.floor(d.length / 2)));
        expect(d.endsWith(shown)).toBe(true);
      }),
      RUNS,
    );
  });

  it.each([
    "12345",
    "+1234567890123456",
    "call me",
    "+49 30 12x45678",
    "++4930123456",
    // Letters (vanity numbers), look-alike digits and invisible characters are not digits.
    "1-800-FLOWERS",
    "\uFF0B\uFF14\uFF19 \uFF13\uFF10 \uFF11\uFF12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18",
    "+\u0664\u0669\u0663\u0660\u0661\u0662\u0663\u0664\u0665\u0666",
    "+49\u202E3012345678",
    "+49\u200B3012345678",
    "+49 30 1234 5678\u200E",
  ])("refuses %j", (value) => {
    expect(() => mask({ format: "phone", last: 4 }, value)).toThrow(/phone/);
  });
});

describe("generic masks", () => {
  it("shows the first and last characters asked for", () => {
    expect(mask({ format: "generic", first: 2, last: 2 }, "AB123456XY")).toEqual({
      format: "generic",
      text: "AB••••XY",
      speakable: "starting with A B, ending in X Y",
    });
    expect(mask({ format: "generic", first: 0, last: 0 }, "secret")).toEqual({
      format: "generic",
      text: HIDDEN,
      speakable: "hidden",
    });
  });

  it("never shows more than first + last, nor more than half, nor a short value whole (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme-composite", minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 8 }),
        fc.integer({ min: 0, max: 8 }),
        (raw, first, last) => {
          const value = raw.normalize("NFC").trim();
          fc.pre(value.length > 0 && !value.includes(HIDDEN));
          const chars = visible(value);
          const m = mask({ format: "generic", first, last }, raw);
          const [head, tail] = m.text.split(HIDDEN) as [string, string];
          const shown = visible(head).length + visible(tail).length;
          expect(shown).toBeLessThanOrEqual(Math.min(first + last, Math.floor(chars.length / 2)));
          expect(chars.join("").startsWith(visible(head).join(""))).toBe(true);
          expect(chars.join("").endsWith(visible(tail).join(""))).toBe(true);
          expect(m.text).not.toBe(value);
          if (chars.length <= 1) expect(m.text).toBe(HIDDEN);
          // The speakable form says exactly the characters the text shows, and nothing more.
          const said = m.speakable === "hidden" ? "" : m.speakable;
          const spoken = [
            /starting with (.*?)(, ending in |$)/u.exec(said)?.[1],
            /ending in (.*)$/u.exec(said)?.[1],
          ].map((words) => (words === undefined ? [] : words.split(" ")));
          expect(spoken).toEqual([visible(head), visible(tail)]);
        },
      ),
      RUNS,
    );
  });

  it("counts what a reader sees: combining marks, emoji sequences and surrogate pairs are one character each", () => {
    const g = (value: string, first: number, last: number) => mask({ format: "generic", first, last }, value);
    // Four visible characters, the first with six accents: half of four is two, not three of nine code points.
    const accented = `x${"\u0301".repeat(6)}bcd`;
    expect(g(accented, 0, 4).text).toBe(`${HIDDEN}cd`);
    expect(g(accented, 0, 4).speakable).toBe("ending in c d");
    // A family emoji (seven code points joined by ZWJ) is one character, shown and said whole.
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}";
    expect(g(`ab${family}`, 0, 4).text).toBe(`${HIDDEN}${family}`);
    expect(g(`ab${family}`, 0, 4).speakable).toBe(`ending in ${family}`);
    // Astral letters (surrogate pairs) are never split.
    expect(g("\u{1D400}\u{1D401}\u{1D402}\u{1D403}", 1, 1).text).toBe(`\u{1D400}${HIDDEN}\u{1D403}`);
  });

  it("does not let invisible padding widen what is shown", () => {
    const g = (value: string) => mask({ format: "generic", first: 2, last: 4 }, value);
    for (const pad of ["\u200B", "\u2060", "\u202E", "\u00AD", "\u{E0041}", "\u0000", " "]) {
      // Four visible characters, padded to more than twelve code points: still at most two shown.
      expect(g(`${pad.repeat(10)}1234`).text).toBe(`${HIDDEN}34`);
      expect(g(`1${pad.repeat(10)}234`).text).toBe(`${HIDDEN}34`);
    }
    // Blank only: nothing to show.
    expect(g("\u200B\u200B\u200B\u200B").text).toBe(HIDDEN);
    expect(g("\u200B\u200B\u200B\u200B").speakable).toBe("hidden");
  });

  it("never shows a bidi control, a zero-width or a tag character, which would reorder or hide text", () => {
    const controls = /[\u200B\u200E\u200F\u202A-\u202E\u2066-\u2069\u061C\uFEFF\u{E0000}-\u{E007F}]/u;
    for (const value of [
      "AB12\u202E3456\u202CXY",
      "\u2067AB123456XY\u2069",
      "AB1234\u200B56X\u200BY",
      "AB123456X\u{E0041}\u{E0042}Y",
    ]) {
      const m = mask({ format: "generic", first: 2, last: 2 }, value);
      expect(m.text).not.toMatch(controls);
      expect(m.speakable).not.toMatch(controls);
      expect(m.text).toMatch(/^AB••••XY$/);
    }
  });

  it("keeps single spaces between shown words and does not say them", () => {
    const m = mask({ format: "generic", first: 0, last: 5 }, "Jane Mary Smith");
    expect(m.text).toBe(`${HIDDEN}Smith`);
    const n = mask({ format: "generic", first: 0, last: 4 }, "ab cd \u3000 ef gh");
    expect(n.text).toBe(`${HIDDEN}ef gh`);
    expect(n.speakable).toBe("ending in e f g h");
  });

  it("refuses a lone surrogate, which would be read as U+FFFD", () => {
    expect(() => mask({ format: "generic", first: 0, last: 4 }, "ab\uD800cd")).toThrow(
      /generic.*valid Unicode text/,
    );
  });

  it.each(["", "   "])("refuses %j", (value) => {
    expect(() => mask({ format: "generic", first: 0, last: 4 }, value)).toThrow(/generic/);
  });
});

describe("refusals", () => {
  const formats: FieldFormat[] = [
    { format: "card" },
    { format: "national_id" },
    { format: "email" },
    { format: "phone", last: 4 },
    { format: "generic", first: 1, last: 1 },
  ];

  it.each(formats)("$format refuses every non-string JSON value", (format) => {
    for (const value of [4111111111111111, true, null, ["4111111111111111"], { n: "4111111111111111" }]) {
      let caught: unknown;
      try {
        mask(format, value);
      } catch (err) {
        caught = err;
      }
      expect(isFieldsealError(caught, "field_format_invalid")).toBe(true);
      expect((caught as Error).message).toBe(
        `field "f" does not fit its format "${format.format}": it must be a string`,
      );
    }
  });

  it.each(formats)("$format names the field and the format, never the value (canary)", (format) => {
    const canary = "CANARY-7f3a9@@x";
    let caught: unknown;
    try {
      maskValue("credit_card", format, canary);
    } catch (err) {
      caught = err;
    }
    if (format.format === "generic") return expect(caught).toBeUndefined();
    expect(isFieldsealError(caught, "field_format_invalid")).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain('field "credit_card"');
    expect(message).toContain(`"${format.format}"`);
    for (const part of ["CANARY", "7f3a9", "@@x"]) expect(message).not.toContain(part);
  });

  it("masks only the fields that have a format, and fails the whole batch on one bad value", () => {
    const formats = parseFieldFormats({ credit_card: { format: "card" } }, "fields");
    const masked = maskFields(formats, [
      ["credit_card", "4111111111111111"],
      ["note", "anything"],
    ]);
    expect([...masked.keys()]).toEqual(["credit_card"]);
    expect(() =>
      maskFields(formats, [
        ["note", "anything"],
        ["credit_card", "4111111111111112"],
      ]),
    ).toThrow(/credit_card.*card.*Luhn/);
  });
});

describe("the fields setting", () => {
  it("parses formats with their options and defaults, from an object or a JSON string", () => {
    const raw = {
      credit_card: { format: "card" },
      email: { format: "email" },
      phone: { format: "phone", last: 2 },
      account: { format: "generic", first: 0, last: 4 },
      ref: { format: "generic" },
      ssn: { format: "national_id" },
    };
    const formats = parseFieldFormats(raw, "fields");
    expect(Object.fromEntries(formats)).toEqual({
      credit_card: { format: "card" },
      email: { format: "email" },
      phone: { format: "phone", last: 2 },
      account: { format: "generic", first: 0, last: 4 },
      ref: { format: "generic", first: 0, last: 4 },
      ssn: { format: "national_id" },
    });
    expect(Object.fromEntries(parseFieldFormats(JSON.stringify(raw), "X"))).toEqual(
      Object.fromEntries(formats),
    );
    expect(parseFieldFormats(undefined, "fields").size).toBe(0);
  });

  it.each([
    [[], /fields: must be an object/],
    ["{not json", /fields: must be a JSON object/],
    [{ a: "card" }, /fields\.a: must be an object/],
    [{ a: { format: "iban" } }, /fields\.a\.format: must be one of card, national_id, email, phone, generic/],
    [{ a: { format: "card", last: 4 } }, /fields\.a\.last: unknown option for format card \(options: none\)/],
    [{ a: { format: "phone", last: 3 } }, /fields\.a\.last: must be 2 or 4/],
    [{ a: { format: "generic", first: 9 } }, /fields\.a\.first: must be a whole number from 0 to 8/],
    [{ a: { format: "generic", last: -1 } }, /fields\.a\.last: must be a whole number from 0 to 8/],
    [{ "": { format: "card" } }, /field name is empty/],
    [{ "credit_card ": { format: "card" } }, /fields: field name "credit_card " holds white space/],
    [{ "credit\u00a0card": { format: "card" } }, /fields: field name "credit\u00a0card" holds white space/],
  ])("refuses %j", (raw, why) => {
    expect(() => parseFieldFormats(raw, "fields")).toThrow(why);
  });
});

describe("the fields setting in the config", () => {
  const where = { dataDir: "/tmp/x", configFile: "/tmp/x/config.json", cwd: "/tmp/x" };

  it("reads the config file's fields, and the environment variable over it", () => {
    const fromFile = parseConfig({ fields: { cc: { format: "card" } } }, {}, where);
    expect(Object.fromEntries(fromFile.fields)).toEqual({ cc: { format: "card" } });
    const fromEnv = parseConfig(
      { fields: { cc: { format: "card" } } },
      { FIELDSEAL_FIELD_FORMATS: '{"mail": {"format": "email"}}' },
      where,
    );
    expect(Object.fromEntries(fromEnv.fields)).toEqual({ mail: { format: "email" } });
    expect(parseConfig({}, {}, where).fields.size).toBe(0);
  });

  it("names the environment variable or the file key that is wrong", () => {
    expect(() => parseConfig({}, { FIELDSEAL_FIELD_FORMATS: '{"cc": {"format": "visa"}}' }, where)).toThrow(
      /^config: FIELDSEAL_FIELD_FORMATS \(file key "fields"\)\.cc\.format: must be one of/,
    );
    expect(() => parseConfig({ fields: { cc: { format: "visa" } } }, {}, where)).toThrow(
      /^config: FIELDSEAL_FIELD_FORMATS \(file key "fields"\)\.cc\.format: must be one of/,
    );
  });
});

describe("attacks on the checks", () => {
  it("any RFC 5322 address fast-check makes is either refused or masked to its first character and domain", () => {
    fc.assert(
      fc.property(fc.emailAddress(), (address) => {
        let m: MaskedValue;
        try {
          m = mask({ format: "email" }, address);
        } catch (err) {
          expect(isFieldsealError(err, "field_format_invalid")).toBe(true);
          return;
        }
        const at = address.lastIndexOf("@");
        const local = address.slice(0, at);
        const first = /^[A-Za-z0-9]$/.test(local[0] ?? "") && local.length > 1 ? local[0] : "";
        expect(m.text).toBe(`${first}${HIDDEN}@${address.slice(at + 1).toLowerCase()}`);
      }),
      RUNS,
    );
  });

  it("handles megabyte values of every format in one pass, refusing the ones that cannot fit", () => {
    const big = "4".repeat(1 << 20);
    const formats: Array<[FieldFormat, string, boolean]> = [
      [{ format: "card" }, big, false],
      [{ format: "phone", last: 4 }, big, false],
      [{ format: "national_id" }, `${"A-".repeat(1 << 19)}`, false],
      [{ format: "email" }, `${"a.".repeat(1 << 19)}@example.com`, false],
      [{ format: "email" }, `a@${"a-".repeat(1 << 19)}.com`, false],
      [{ format: "generic", first: 8, last: 8 }, big, true],
    ];
    // Runs of invisible characters, which V8's grapheme segmenter walks in more than linear time, and one
    // cluster of a million combining marks: each masked in one pass too (a slow path would time out).
    const g = { format: "generic", first: 2, last: 2 } as const;
    expect(mask(g, `${"\u200B".repeat(1 << 20)}abcd`).text).toBe(`${HIDDEN}cd`);
    expect(mask(g, `abcd${"\u2066".repeat(1 << 20)}`).text).toBe(`${HIDDEN}cd`);
    expect(mask(g, `ab${" \u200B".repeat(1 << 19)}cd`).text).toBe(`${HIDDEN}cd`);
    expect(mask(g, `abc${"\u0301".repeat(1 << 20)}`).text).toBe(`${HIDDEN}${"\u0107".padEnd(16, "\u0301")}`);
    for (const [format, value, fits] of formats) {
      if (fits) {
        expect(mask(format, value).text).toBe(`44444444${HIDDEN}44444444`);
      } else {
        expect(() => mask(format, value)).toThrow(/does not fit/);
      }
    }
  });

  it("does not let look-alike digits or invisible characters through as a card", () => {
    for (const value of [
      "４１１１１１１１１１１１１１１１", // full-width digits
      "4111\u200b1111 1111 1111", // zero-width space
      "4111\u00a01111\u00a01111\u00a01111", // no-break spaces are not a card's grouping
      "٤١١١١١١١١١١١١١١١", // Arabic-Indic digits
    ]) {
      expect(() => mask({ format: "card" }, value)).toThrow(/must be digits/);
    }
  });
});

describe("the keyringFields setting", () => {
  const where = { dataDir: "/tmp/x", configFile: "/tmp/x/config.json", cwd: "/tmp/x" };

  it("merges each keyring's formats over fields, the keyring's winning", () => {
    const config = parseConfig(
      {
        fields: { credit_card: { format: "card" }, account: { format: "generic" } },
        keyringFields: {
          eu: { account: { format: "generic", first: 2, last: 2 }, email: { format: "email" } },
        },
      },
      {},
      where,
    );
    expect(Object.fromEntries(config.keyringFields.get("eu") ?? [])).toEqual({
      credit_card: { format: "card" },
      account: { format: "generic", first: 2, last: 2 },
      email: { format: "email" },
    });
    expect(config.keyringFields.has("default")).toBe(false);
    expect(Object.keys(Object.fromEntries(config.fields))).toEqual(["credit_card", "account"]);
  });

  it.each([
    [[], /keyringFields: must be an object/],
    [{ "Not A Keyring": {} }, /keyringFields: "Not A Keyring" is not a keyring name/],
    [{ eu: { x: { format: "iban" } } }, /keyringFields\.eu\.x\.format: must be one of/],
  ])("refuses %j", (raw, why) => {
    expect(() => parseConfig({ keyringFields: raw }, {}, where)).toThrow(why);
  });
});

/**
 * Signed webhooks attacked on the wire, against a real Fieldseal server over loopback on HTTP/1.1 (raw
 * sockets, so header bytes, repeats and request targets are exactly as written) and HTTP/2: one signature
 * is served once whichever protocol and spelling carries it, repeated signing headers and other request
 * targets never authenticate, and nothing answers 5xx or echoes a value.
 */
import * as http2 from "node:http2";
import { connect as netConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signWebhookV2 } from "../../src/cognigy/webhook-signature.js";
import { startTestFieldseal, type TestFieldseal } from "../support/fieldseal.js";

const SECRET = "wire-signer-secret-0123456789abcdefghij";
const CARD = "4111111111111111";
const FLAGGED = "field:credit_card";

interface Answer {
  status: number;
  reason: string | undefined;
  text: string;
}

describe("signed webhooks on the wire", () => {
  let fs: TestFieldseal;
  beforeAll(async () => {
    fs = await startTestFieldseal({
      principals: [{ name: "flow", scopes: ["encrypt"] }],
      settings: { webhook: { hmacSecrets: { flow: SECRET } } },
    });
  });
  afterAll(async () => {
    await fs.close();
  });

  const nowSec = () => Math.floor(Date.now() / 1000);
  const body = (sessionId: string) => JSON.stringify({ sessionId, variables: { credit_card: CARD } });
  const sign = (target: string, ts: number, text: string) =>
    signWebhookV2(SECRET, {
      method: "POST",
      path: target,
      timestampSec: ts,
      sensitiveMetadata: FLAGGED,
      body: text,
    });

  /** One HTTP/1.1 request written byte for byte; the answer read until the server closes (at most 10 s). */
  function rawHttp1(
    target: string,
    headerLines: string[],
    text: string,
    contentType = "application/json",
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(fs.port, "127.0.0.1");
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => socket.destroy(new Error("no answer within 10 s")), 10_000);
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.on("error", reject);
      socket.on("close", () => {
        clearTimeout(timer);
        const got = Buffer.concat(chunks).toString("utf8");
        const [head = "", rest = ""] = got.split("\r\n\r\n", 2);
        resolve({
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
          reason: /\r\nfieldseal-reason: ([^\r]*)/i.exec(head)?.[1],
          text: rest,
        });
      });
      socket.write(
        `POST ${target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: ${contentType}\r\n` +
          `${headerLines.map((l) => `${l}\r\n`).join("")}content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
      );
    });
  }
  const signedLines = (ts: number, signature: string, keyId = "flow") => [
    `x-fieldseal-key-id: ${keyId}`,
    `x-fieldseal-timestamp: ${ts}`,
    `x-fieldseal-signature: ${signature}`,
    `x-sensitive-metadata: ${FLAGGED}`,
  ];

  function viaHttp2(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, text: string) {
    return new Promise<Answer>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", "content-type": "application/json", ...headers });
      let status = 0;
      let reason: string | undefined;
      let out = "";
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        reason = h["fieldseal-reason"] as string | undefined;
      });
      stream.on("data", (c: Buffer) => {
        out += c.toString("utf8");
      });
      stream.on("end", () => resolve({ status, reason, text: out }));
      stream.on("error", reject);
      stream.end(text);
    });
  }

  function expectNoLeak(answer: Answer) {
    expect(answer.status).toBeLessThan(500);
    if (answer.status !== 200) expect(answer.text).not.toContain(CARD);
  }

  it("seals a signature once across HTTP/1.1 and HTTP/2, 30 concurrent copies answered alike", async () => {
    const ts = nowSec();
    const text = body("wire-once");
    const signature = sign("/webhooks/cognigy", ts, text);
    const session = http2.connect(fs.url);
    try {
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          i % 2 === 0
            ? rawHttp1("/webhooks/cognigy", signedLines(ts, signature), text)
            : viaHttp2(
                session,
                {
                  ":path": "/webhooks/cognigy",
                  "x-fieldseal-key-id": "flow",
                  "x-fieldseal-timestamp": String(ts),
                  "x-fieldseal-signature": signature,
                  "x-sensitive-metadata": FLAGGED,
                },
                text,
              ),
        ),
      );
      for (const a of answers) expectNoLeak(a);
      // Copies of an admitted signature get the first copy's answer (a retry of the HTTP Request node must
      // learn what was sealed), and nothing is sealed or pushed again.
      expect(answers.filter((a) => a.status === 200)).toHaveLength(30);
      expect(new Set(answers.map((a) => JSON.stringify(JSON.parse(a.text).variables))).size).toBe(1);
      expect(fs.audit.events.filter((e) => e.scopeId === "wire-once" && e.action === "encrypt")).toHaveLength(
        1,
      );
    } finally {
      session.close();
    }
  });

  it("refuses a served signature re-spelt (upper-case hex, V2=) as malformed, not as a fresh request", async () => {
    const ts = nowSec();
    const text = body("wire-spelling");
    const signature = sign("/webhooks/cognigy", ts, text);
    expect((await rawHttp1("/webhooks/cognigy", signedLines(ts, signature), text)).status).toBe(200);
    for (const respelt of [`v2=${signature.slice(3).toUpperCase()}`, `V2=${signature.slice(3)}`]) {
      const answer = await rawHttp1("/webhooks/cognigy", signedLines(ts, respelt), text);
      expect(answer.status).toBe(401);
      expect(answer.reason).toBe("unauthenticated");
      expect(JSON.parse(answer.text).detail).toMatch(/lower-case hex/);
    }
  });

  it("never authenticates repeated signing headers, on either protocol", async () => {
    const ts = nowSec();
    const text = body("wire-repeats");
    const signature = sign("/webhooks/cognigy", ts, text);
    const other = sign("/webhooks/cognigy", ts - 1, text);
    const repeats = [
      [...signedLines(ts, signature), `x-fieldseal-signature: ${other}`],
      [...signedLines(ts, signature), `x-fieldseal-signature: ${signature}`],
      [...signedLines(ts, signature), "x-fieldseal-key-id: flow"],
      [...signedLines(ts, signature), `x-fieldseal-timestamp: ${ts}`],
      [...signedLines(ts, signature), `X-Sensitive-Metadata: ${FLAGGED}`],
    ];
    for (const lines of repeats) {
      const answer = await rawHttp1("/webhooks/cognigy", lines, text);
      expectNoLeak(answer);
      expect([400, 401]).toContain(answer.status);
    }
    const session = http2.connect(fs.url);
    try {
      const answer = await viaHttp2(
        session,
        {
          ":path": "/webhooks/cognigy",
          "x-fieldseal-key-id": "flow",
          "x-fieldseal-timestamp": String(ts),
          "x-fieldseal-signature": [signature, signature],
          "x-sensitive-metadata": FLAGGED,
        },
        text,
      );
      expect(answer.status).toBe(401);
      expect(fs.audit.events.filter((e) => e.scopeId === "wire-repeats")).toEqual([]);
      // The one well-formed copy is still unspent.
      expect((await rawHttp1("/webhooks/cognigy", signedLines(ts, signature), text)).status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("binds the request target: other spellings of the path are not the webhook, a query is signed", async () => {
    const ts = nowSec();
    const text = body("wire-target");
    for (const target of [
      "http://127.0.0.1/webhooks/cognigy",
      "//webhooks/cognigy",
      "/webhooks/cognigy/",
      "/webhooks/cognig%79",
      "/Webhooks/cognigy",
    ]) {
      const answer = await rawHttp1(target, signedLines(ts, sign(target, ts, text)), text);
      expectNoLeak(answer);
      expect(answer.status, target).toBe(404);
    }
    // Signed for one query, sent with another.
    const signedForA = sign("/webhooks/cognigy?flow=a", ts, text);
    const moved = await rawHttp1("/webhooks/cognigy?flow=b", signedLines(ts, signedForA), text);
    expect(moved.status).toBe(401);
    expect(JSON.parse(moved.text).detail).toBe("signature does not match");
    expect((await rawHttp1("/webhooks/cognigy?flow=a", signedLines(ts, signedForA), text)).status).toBe(200);
  });

  it("does not let a captured JSON request be read as a form by changing its unsigned Content-Type", async () => {
    // The body is the signer's, with a value the chat user typed; read as a form it names another session and
    // another card. Content-Type is not in the signed text, so the body alone must decide how it is read.
    const ts = nowSec();
    const typed = "x&sessionId=wire-victim&variables[credit_card]=6666666666666666&z=";
    const text = JSON.stringify({ sessionId: "wire-original", variables: { credit_card: typed } });
    const lines = signedLines(ts, sign("/webhooks/cognigy", ts, text));
    // Captured before delivery and sent first, as a form.
    const swapped = await rawHttp1("/webhooks/cognigy", lines, text, "application/x-www-form-urlencoded");
    expect(fs.audit.events.filter((e) => e.scopeId === "wire-victim")).toEqual([]);
    expect(swapped.status).toBe(400);
    expect(swapped.reason).toBe("invalid_argument");
    expect(JSON.parse(swapped.text).detail).toBe(
      "a form body cannot start with { or [: send it as application/json",
    );
    // (The refusal came after the signature was checked, so this copy is spent; a fresh one goes through.)
    const fresh = signedLines(ts - 1, sign("/webhooks/cognigy", ts - 1, text));
    expect((await rawHttp1("/webhooks/cognigy", fresh, text)).status).toBe(200);
  });

  it("does not let a captured multipart request be read as a form (or with another boundary) by changing its Content-Type", async () => {
    const ts = nowSec();
    const typed = "x&sessionId=wire-victim-mp&variables[credit_card]=6666666666666666&z=";
    const boundary = "wireBoundary";
    const text =
      `--${boundary}\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\nwire-original-mp\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="variables[credit_card]"\r\n\r\n${typed}\r\n` +
      `--${boundary}--\r\n`;
    for (const [n, type, detail] of [
      [
        0,
        "application/x-www-form-urlencoded",
        "a form body cannot start with --: send it as multipart/form-data",
      ],
      [
        1,
        "multipart/form-data; boundary=wireB",
        "a multipart boundary delimiter must be followed by a line end or --",
      ],
      [2, "application/json", "body is not valid JSON"],
    ] as const) {
      // Each captured before delivery (a fresh signature), so only the body's reading can refuse it.
      const lines = signedLines(ts - n, sign("/webhooks/cognigy", ts - n, text));
      const swapped = await rawHttp1("/webhooks/cognigy", lines, text, type);
      expect(swapped.status, type).toBe(400);
      expect(JSON.parse(swapped.text).detail, type).toBe(detail);
    }
    expect(fs.audit.events.filter((e) => e.scopeId === "wire-victim-mp")).toEqual([]);
    const fresh = signedLines(ts - 3, sign("/webhooks/cognigy", ts - 3, text));
    const right = await rawHttp1(
      "/webhooks/cognigy",
      fresh,
      text,
      `multipart/form-data; boundary=${boundary}`,
    );
    expect(right.status).toBe(200);
    expect(fs.audit.events.filter((e) => e.scopeId === "wire-original-mp")).toHaveLength(1);
  });

  it("takes the timestamp window at its edges and refuses what lies past them", async () => {
    const text = (n: string) => body(`wire-window-${n}`);
    const at = (offset: number, n: string) => {
      const ts = nowSec() + offset;
      return rawHttp1("/webhooks/cognigy", signedLines(ts, sign("/webhooks/cognigy", ts, text(n))), text(n));
    };
    // 2 s inside each edge of the 300 s default (leaving room for the time the request takes).
    expect((await at(-298, "early")).status).toBe(200);
    expect((await at(298, "late")).status).toBe(200);
    for (const [offset, n] of [
      [-302, "too-early"],
      [302, "too-late"],
    ] as const) {
      const answer = await at(offset, n);
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.text).detail).toBe("signature timestamp is outside the allowed window");
    }
  });

  it("spends nothing for unknown key ids, many of them", async () => {
    const ts = nowSec();
    const text = body("wire-unknown");
    for (let i = 0; i < 200; i++) {
      const answer = await rawHttp1(
        "/webhooks/cognigy",
        signedLines(ts, sign("/webhooks/cognigy", ts, text), `flow-${i}`),
        text,
      );
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.text).detail).toBe("unknown signing key id");
    }
    expect((await fetch(`${fs.url}/healthz`)).status).toBe(200);
    expect(fs.logs.some((l) => l.includes(CARD))).toBe(false);
  });
});

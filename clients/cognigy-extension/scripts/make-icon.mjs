// Writes icon.png: the 64x64 PNG Cognigy shows for the Extension (a padlock on a rounded blue square),
// drawn pixel by pixel and encoded with node:zlib, so the icon is reproducible and needs no download.
// Run: node scripts/make-icon.mjs [output path, default icon.png beside package.json]
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32, deflateSync } from "node:zlib";

const SIZE = 64;
const BLUE = [31, 78, 121, 255];
const WHITE = [255, 255, 255, 255];
const CLEAR = [0, 0, 0, 0];

/** Inside a square of side 64 with corners rounded at radius r. */
function inRoundedSquare(x, y, r) {
  const cx = Math.min(Math.max(x, r), SIZE - 1 - r);
  const cy = Math.min(Math.max(y, r), SIZE - 1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function pixel(x, y) {
  if (!inRoundedSquare(x, y, 12)) return CLEAR;
  // Lock body with a keyhole.
  const inBody = x >= 18 && x <= 45 && y >= 29 && y <= 51;
  const inKeyhole = (x - 31.5) ** 2 + (y - 37) ** 2 <= 9 || (x >= 30 && x <= 33 && y >= 37 && y <= 45);
  if (inBody) return inKeyhole ? BLUE : WHITE;
  // Shackle: a half ring above the body.
  const d = Math.hypot(x - 31.5, y - 29);
  if (y < 29 && d >= 7 && d <= 11) return WHITE;
  if (y >= 27 && y < 29 && ((x >= 21 && x <= 24) || (x >= 39 && x <= 42))) return WHITE;
  return BLUE;
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

const rows = [];
for (let y = 0; y < SIZE; y++) {
  // Filter type 0 (none) before each row of RGBA pixels.
  rows.push(Buffer.from([0, ...Array.from({ length: SIZE }, (_, x) => pixel(x, y)).flat()]));
}
const header = Buffer.alloc(13);
header.writeUInt32BE(SIZE, 0);
header.writeUInt32BE(SIZE, 4);
header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, deflate, adaptive filtering, no interlace
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk("IHDR", header),
  chunk("IDAT", deflateSync(Buffer.concat(rows), { level: 9 })),
  chunk("IEND", Buffer.alloc(0)),
]);
writeFileSync(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "icon.png"), png);

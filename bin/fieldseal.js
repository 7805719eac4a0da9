#!/usr/bin/env node
// The fieldseal command. The TypeScript sources are compiled to dist/ by `npm run build`.
import { main } from "../dist/src/cli.js";

process.exitCode = await main(process.argv.slice(2), process.env);

// The one Node.js requirement, stated identically in README.md ("Node.js 22.18 or newer") and package.json
// (`engines.node`); test/unit/node-requirement.test.ts checks that the three agree. Why 22.18: the runtime
// dependency @connectrpc/connect-node (and @bufbuild/protoc-gen-es) declare `node >=22`, so npm warns
// EBADENGINE below 22; 22.18 is the first release that runs the repository's `.ts` scripts without flags
// (type stripping on by default). The npm scripts run Node 26 from the `node` devDependency, above it.

/** The lowest Node.js version Fieldseal runs on, as [major, minor]. */
export const NODE_REQUIREMENT = [22, 18];

/** Whether `version` (as `process.versions.node`, e.g. "20.20.2") meets NODE_REQUIREMENT. */
export function meetsNodeRequirement(version) {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const [needMajor, needMinor] = NODE_REQUIREMENT;
  return major > needMajor || (major === needMajor && minor >= needMinor);
}

/** The requirement as README.md words it. */
export const NODE_REQUIREMENT_TEXT = `Node.js ${NODE_REQUIREMENT.join(".")} or newer`;

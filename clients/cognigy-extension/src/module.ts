/** The Fieldseal Extension: Cognigy loads this module's default export. */
import { createExtension } from "@cognigy/extension-tools";
import { fieldsealConnection } from "./connections/fieldseal.js";
import { openFieldNode, openOnFailureNode, openOnSuccessNode } from "./nodes/open-field.js";
import { sealFieldsNode, sealOnFailureNode, sealOnSuccessNode } from "./nodes/seal-fields.js";

export default createExtension({
  nodes: [
    sealFieldsNode,
    sealOnSuccessNode,
    sealOnFailureNode,
    openFieldNode,
    openOnSuccessNode,
    openOnFailureNode,
  ],
  connections: [fieldsealConnection],
  options: { label: "Fieldseal" },
});

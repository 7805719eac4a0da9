/**
 * The parts of @cognigy/extension-tools' execution interfaces the nodes use, named once so the nodes and
 * the test harness are typed against the same declarations.
 */
export type {
  ICognigyInputProperties,
  INodeExecutionAPI,
  INodeExecutionCognigyObject,
  INodeFunctionBaseParams,
  ISensitiveLoggingSettings,
  TNodeChildConfigs,
} from "@cognigy/extension-tools/build/interfaces/descriptor.js";

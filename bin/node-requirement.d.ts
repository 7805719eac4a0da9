/** Types of bin/node-requirement.js (plain JavaScript, so the command can check Node before building). */
export declare const NODE_REQUIREMENT: readonly [number, number];
export declare function meetsNodeRequirement(version: string): boolean;
export declare const NODE_REQUIREMENT_TEXT: string;

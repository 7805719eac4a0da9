/**
 * Starts the real servers the integration tests share (the Secrets Manager emulator) once per run and
 * stops them at the end. Each test file still starts its own Fieldseal and Cognigy simulator on port 0.
 */
import type { TestProject } from "vitest/node";
import { startMoto } from "./moto.js";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const moto = await startMoto();
  project.provide("motoEndpoint", moto.endpoint);
  return async () => {
    await moto.stop();
  };
}
